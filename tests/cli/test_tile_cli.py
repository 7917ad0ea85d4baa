"""`pathattn tile` from the command line: bad input gives one line and a non-zero exit."""

import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.io.coords import read_coords


def _tile(*args):
    return main(["tile", *map(str, args)])


def _error_lines(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("pathattn")]


def tissue_image():
    image = np.full((1024, 1536, 3), 242, np.uint8)
    image[256:768, 256:1280] = (200, 120, 170)
    return image


def test_batch_records_bad_slides_and_goes_on(make_slide, tmp_path, capsys):
    good = make_slide("good", tissue_image(), mpp=0.5)
    blank = make_slide("blank", np.full((1024, 1536, 3), 242, np.uint8), mpp=0.5)
    no_mpp = make_slide("nompp", tissue_image(), mpp=0.5, mpp_metadata=False)
    not_slide = tmp_path / "notes.svs"
    not_slide.write_text("not a slide")
    truncated = tmp_path / "trunc.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    out = tmp_path / "out"
    code = _tile("--slides", good, blank, no_mpp, not_slide, truncated, tmp_path / "missing.svs", "--out", out)
    assert code == 1
    errors = _error_lines(capsys)
    assert len(errors) == 1 and "4 of 6 slides failed" in errors[0]
    rows = {line.split(",")[0]: line for line in (out / "manifest.csv").read_text().splitlines()[1:]}
    assert ",done,8," in rows["good"] and ",empty,0," in rows["blank"]
    assert "--slide-mpp" in rows["nompp"] and "failed" in rows["nompp"]
    assert "not a slide OpenSlide can read" in rows["notes"]
    assert "failed" in rows["trunc"] and "failed" in rows["missing"] and "not found" in rows["missing"]
    assert read_coords(out / "coords" / "blank.h5").coords.shape == (0, 2)


def test_no_tissue_is_an_error_unless_allowed(make_slide, tmp_path, capsys):
    blank = make_slide("blank", np.full((1024, 1536, 3), 242, np.uint8), mpp=0.5)
    assert _tile("--slides", blank, "--out", tmp_path / "o") == 1
    assert "no tissue" in _error_lines(capsys)[0]
    assert _tile("--slides", blank, "--out", tmp_path / "o", "--allow-empty") == 0


def test_mpp_sources(make_slide, tmp_path, capsys):
    no_mpp = make_slide("nompp", tissue_image(), mpp=0.5, mpp_metadata=False)
    assert _tile("--slides", no_mpp, "--out", tmp_path / "o", "--slide-mpp", 0.5) == 0
    assert read_coords(tmp_path / "o" / "coords" / "nompp.h5").attrs["mpp_source"] == "user"
    svs = make_slide("ap", tissue_image(), mpp=0.5, layout="aperio")
    assert _tile("--slides", svs, "--out", tmp_path / "o") == 0
    assert read_coords(tmp_path / "o" / "coords" / "ap.h5").attrs["mpp_source"] == "openslide"
    mag_only = make_slide("mag", tissue_image(), mpp=0.5, layout="aperio", mpp_metadata=False)
    assert _tile("--slides", mag_only, "--out", tmp_path / "o") == 0
    data = read_coords(tmp_path / "o" / "coords" / "mag.h5")
    assert data.attrs["mpp_source"] == "objective-power" and data.attrs["mpp_level0"] == 0.5  # AppMag 20


def test_sample_sheet_with_mpp_column(make_slide, tmp_path):
    path = make_slide("nompp", tissue_image(), mpp=0.5, mpp_metadata=False)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"slide_id\tslide_path\tmpp\nS1\t{path.name}\t0.5\n")
    path.rename(tmp_path / path.name)
    assert _tile("--samples", sheet, "--out", tmp_path / "o") == 0
    assert (tmp_path / "o" / "coords" / "S1.h5").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--patch-size", "-256"], "--patch-size"),
        (["--overlap", "256"], "--overlap"),
        (["--overlap", "-3"], "--overlap"),
        (["--mpp", "0"], "--mpp"),
        (["--min-tissue", "2"], "--min-tissue"),
        (["--median-blur", "4"], "--median-blur"),
        (["--workers", "0"], "--workers"),
        (["--slide-mpp", "-1"], "--slide-mpp"),
        (["--patch-size", "abc"], "--patch-size"),
        (["--bogus", "1"], "--bogus"),
        (["--annotations", "/no/such/dir"], "--annotations"),
    ],
)
def test_nonsensical_options(make_slide, tmp_path, capsys, args, needle):
    slide = make_slide("s", tissue_image(), mpp=0.5)
    assert _tile("--slides", slide, "--out", tmp_path / "o", *args) == 2
    errors = _error_lines(capsys)
    assert len(errors) == 1 and needle in errors[0]
    assert not (tmp_path / "o" / "coords").exists()


def test_input_errors(tmp_path, capsys):
    assert _tile("--out", tmp_path / "o") == 2
    assert "--slides" in _error_lines(capsys)[0]
    assert _tile("--samples", tmp_path / "none.csv", "--out", tmp_path / "o") == 2
    assert "not found" in _error_lines(capsys)[0]
    (tmp_path / "bad.csv").write_text("slide,label\na,1\n")
    assert _tile("--samples", tmp_path / "bad.csv", "--out", tmp_path / "o") == 2
    assert "slide_path" in _error_lines(capsys)[0]
    (tmp_path / "empty").mkdir()
    assert _tile("--slides", tmp_path / "empty", "--out", tmp_path / "o") == 2
    assert "holds no slide" in _error_lines(capsys)[0]


def test_config_file(make_slide, tmp_path):
    slide = make_slide("s", tissue_image(), mpp=0.5)
    config = tmp_path / "tile.yaml"
    config.write_text("patch_size: 128\nmin_tissue: 0.5\n")
    assert _tile("--config", config, "--slides", slide, "--out", tmp_path / "o") == 0
    assert read_coords(tmp_path / "o" / "coords" / "s.h5").attrs["patch_size"] == 128


def test_slide_ids_select_rows_of_the_sheet(make_slide, tmp_path, capsys):
    """One job per slide (as the workflow runs it): each tiles its own row; the manifest gathers all."""
    sheet = tmp_path / "samples.csv"
    paths = [make_slide(name, tissue_image(), mpp=0.5) for name in ("a", "b")]
    sheet.write_text("slide_id,slide_path\n" + "".join(f"S{k},{p}\n" for k, p in enumerate(paths)))
    out = tmp_path / "o"
    assert _tile("--samples", sheet, "--slide-ids", "S1", "--out", out) == 0
    assert sorted(p.name for p in (out / "coords").iterdir()) == ["S1.h5"]
    assert _tile("--samples", sheet, "--slide-ids", "S0", "--out", out) == 0
    assert [row.split(",")[:2] for row in (out / "manifest.csv").read_text().splitlines()[1:]] == [
        ["S0", "done"],
        ["S1", "done"],
    ]
    capsys.readouterr()
    assert _tile("--samples", sheet, "--slide-ids", "S0", "a", "--out", out) == 2
    errors = _error_lines(capsys)
    assert len(errors) == 1 and f"--slide-ids: 1 slide(s) not in --samples {sheet}: a;" in errors[0]
