"""What a re-run makes, per mode, on a finished study (stand-in outputs, dry runs): per slide, only what changed."""

from pathattn.workflow.layout import StudyLayout

SLIDES = ["s0", "s1", "s2", "s3"]
COHORT = {("train", None), ("predict", None), ("explain", None), ("evaluate", None), ("report", None), ("all", None)}


def test_per_slide_reruns_only_the_changed_slide(finished_study, dry_run):
    cwd, config = finished_study(batch=False)
    assert dry_run(cwd, "--configfile", config) == []  # finished: nothing to be done

    # a deleted feature file: that slide's extraction and what depends on it, no tiling, no other slide's features
    StudyLayout(cwd / "results" / "demo").features("s2").unlink()
    jobs = dry_run(cwd, "--configfile", config)
    assert set(jobs) == {("extract", "s2"), *{("heatmap", s) for s in SLIDES}} | COHORT
    assert len(jobs) == len(set(jobs))


def test_per_slide_makes_a_new_slide_then_the_cohort_steps(finished_study, dry_run, preset):
    cwd, config = finished_study(batch=False)
    sheet = cwd / preset("demo")["samples"]
    (sheet.parent / "slides" / "new.tif").touch()
    sheet.write_text(sheet.read_text() + "new,p_new,class1,slides/new.tif\n")
    jobs = set(dry_run(cwd, "--configfile", config))
    assert jobs == {("tile", "new"), ("extract", "new"), *{("heatmap", s) for s in [*SLIDES, "new"]}} | COHORT


def test_batch_reruns_the_whole_stage(finished_study, dry_run):
    cwd, config = finished_study(batch=True)
    assert dry_run(cwd, "--configfile", config) == []
    StudyLayout(cwd / "results" / "demo").features("s2").unlink()
    assert set(dry_run(cwd, "--configfile", config)) == {("extract", None), ("heatmap", None)} | COHORT
