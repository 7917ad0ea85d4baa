"""`pathattn tile` refuses what would write outside --out or succeed wrongly: one line, exit code, no debris."""

import os

import numpy as np
import pytest
import tifffile

from pathattn.cli.main import main
from pathattn.io.coords import read_coords
from pathattn.io.manifest import read_manifest


def tissue_image():
    image = np.full((1024, 1536, 3), 242, np.uint8)
    image[256:768, 256:1280] = (200, 120, 170)
    return image


def tile(*args):
    return main(["tile", *map(str, args)])


def error_lines(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("pathattn")]


def files_under(folder):
    """Every file under ``folder`` but the manifest's (empty) lock file."""
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != ".manifest.csv.lock")


@pytest.mark.parametrize("bad_id", ["{victim}", "../../../../ESCAPED", "a/b", ".hidden"])
def test_slide_ids_that_would_escape_out_are_refused(make_slide, tmp_path, capsys, bad_id):
    slide = make_slide("s", tissue_image(), mpp=0.5)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    bad_id = bad_id.format(victim=victim)
    sheet = tmp_path / "samples.csv"
    sheet.write_text(f"slide_id,slide_path\nok,{slide}\n{bad_id},{slide}\n")
    before = files_under(tmp_path)
    out = tmp_path / "runs" / "deep" / "out"
    assert tile("--samples", sheet, "--out", out) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"--samples {sheet} line 3: slide id" in errors[0] and "slide_id" in errors[0]
    assert files_under(tmp_path) == before and victim.read_text() == "keep me"
    assert not list(tmp_path.rglob("ESCAPED*")) and not list(tmp_path.rglob("victim.*"))


@pytest.mark.parametrize(("mpp", "needle"), [("-0.5", "must be a positive"), ("0", "must be a positive"),
                                             ("nan", "must be a positive"), ("fast", "is not a number")])  # fmt: skip
def test_bad_sample_sheet_mpp(make_slide, tmp_path, capsys, mpp, needle):
    slide = make_slide("s", tissue_image(), mpp=0.5, mpp_metadata=False)
    sheet = tmp_path / "samples.csv"
    sheet.write_text(f"slide_id,slide_path,mpp\ns,{slide},{mpp}\n")
    assert tile("--samples", sheet, "--out", tmp_path / "out") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"--samples {sheet} line 2: mpp" in errors[0] and needle in errors[0]
    assert not (tmp_path / "out").exists()


def test_an_implausible_resolution_is_refused_and_the_users_value_overrides_it(tmp_path, capsys):
    """A TIFF whose resolution tags say 28.35 pixels per inch (a default-dpi tag, read as 896 µm/px)."""
    slide = tmp_path / "dpi.tif"
    tifffile.imwrite(slide, tissue_image(), photometric="rgb", tile=(256, 256), resolution=(28.35, 28.35),
                     resolutionunit="INCH")  # fmt: skip
    out = tmp_path / "out"
    assert tile("--slides", slide, "--out", out) == 1
    errors = error_lines(capsys)
    assert len(errors) == 1 and "resolution of 895.9 µm/px" in errors[0]
    assert "outside the plausible 0.05-50 µm/px; pass --slide-mpp" in errors[0]
    assert not (out / "coords" / "dpi.h5").exists()
    assert tile("--slides", slide, "--out", out, "--slide-mpp", "0.5") == 0
    attrs = read_coords(out / "coords" / "dpi.h5").attrs
    assert attrs["mpp_source"] == "user" and attrs["mpp_level0"] == 0.5


def test_grids_too_large_and_patches_larger_than_the_slide(make_slide, tmp_path, capsys):
    image = np.full((1536, 2048, 3), 242, np.uint8)
    image[256:1280, 256:1792] = (200, 120, 170)
    slide = make_slide("s", image, mpp=0.5)
    out = tmp_path / "out"
    assert tile("--slides", slide, "--out", out, "--patch-size", 2, "--overlap", 1) == 1  # stride 1 px
    errors = error_lines(capsys)
    assert len(errors) == 1 and "the grid would hold 3,142,145 patches (more than 2,000,000)" in errors[0]
    assert "--overlap" in errors[0] and "--slide-mpp" in errors[0]
    assert tile("--slides", slide, "--out", out, "--patch-size", 2048) == 1
    errors = error_lines(capsys)
    assert len(errors) == 1 and "more than the slide's 2048 x 1536 px; lower --patch-size or --mpp" in errors[0]
    assert {row["status"] for row in read_manifest(out / "manifest.csv")} == {"failed"}
    assert files_under(out) == [out.joinpath("manifest.csv").relative_to(out)]


def test_out_naming_a_file(make_slide, tmp_path, capsys):
    slide = make_slide("s", tissue_image(), mpp=0.5)
    (tmp_path / "taken").write_text("x")
    assert tile("--slides", slide, "--out", tmp_path / "taken") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "--out" in errors[0] and "is a file, not a folder" in errors[0]


def test_slide_paths_are_stored_absolute(make_slide, tmp_path, monkeypatch):
    slide = make_slide("s", tissue_image(), mpp=0.5)
    monkeypatch.chdir(slide.parent)
    assert tile("--slides", slide.name, "--out", tmp_path / "out") == 0
    recorded = read_coords(tmp_path / "out" / "coords" / "s.h5").attrs["slide_path"]
    assert os.path.isabs(recorded) and os.path.samefile(recorded, slide)


def test_an_unreadable_slide_is_a_permission_problem_not_a_format_problem(make_slide, tmp_path, capsys,
                                                                         monkeypatch):  # fmt: skip
    slide = make_slide("s", tissue_image(), mpp=0.5)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(slide) else real_access(path, mode))
    assert tile("--slides", slide, "--out", tmp_path / "out") == 1
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"cannot read {slide}: permission denied" in errors[0]
    assert "not a slide" not in errors[0]
