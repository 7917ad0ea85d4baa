"""The report's volume section on a small hand-made run: tiny CT NIfTI volumes tiled by ``pathattn tile``,
attention written by hand (high on lesion slices), predictions and ``pathattn evaluate wsol`` on volumes."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.evaluate.volume_run import VolumeWsolJob, run_volume_wsol
from pathattn.io.coords import read_coords
from pathattn.io.scores import write_patch_scores
from pathattn.io.volume_samples import VolumeEntry
from pathattn.report.html import write_report
from pathattn.report.inputs import load_inputs
from pathattn.report.volume_section import volume_section
from pathattn.report.volumes import Strip, profile
from pathattn.tile.volume import VolumeTileJob, tile_volume
from pathattn.tile.volume_grid import VolumeGridParams

PROBABILITY = {"vA": 0.9, "vB": 0.6, "vC": 0.2}  # vC has no lesion
LESION_SLICES = (4, 7)  # k range of the lesion in vA and vB


def write_study(folder: Path, volume_id: str) -> tuple[Path, Path]:
    """A 20 x 20 x 12 CT (1.5 x 1.5 x 3 mm): air, a soft-tissue body on slices 1-10, a lesion in vA and vB."""
    ct = np.full((20, 20, 12), -1000, np.float32)
    ct[3:17, 3:17, 1:11] = 40
    label = np.zeros(ct.shape, np.int16)
    if volume_id != "vC":
        ct[8:12, 8:12, slice(*LESION_SLICES)] = 120
        label[8:12, 8:12, slice(*LESION_SLICES)] = 1
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    paths = folder / f"{volume_id}_ct.nii.gz", folder / f"{volume_id}_label.nii.gz"
    nib.save(nib.Nifti1Image(ct, affine), paths[0])
    nib.save(nib.Nifti1Image(label, affine), paths[1])
    return paths


def make_run(root: Path, mode: str = "slices", evaluate: bool = True) -> Path:
    """``root/results`` with ``tiles/``, ``predict/`` (attention, predictions.csv) and ``evaluate/``."""
    results, images = root / "results", root / "images"
    images.mkdir(parents=True)
    grid = VolumeGridParams(mode=mode, patch_size_mm=9.0)  # type: ignore[arg-type]
    rows = ["slide_id,n_patches,prediction,prob_normal,prob_lesion"]
    for volume_id, probability in PROBABILITY.items():
        ct, label = write_study(images, volume_id)
        entry = VolumeEntry(volume_id, {"CT": ct}, label)
        assert tile_volume(entry, VolumeTileJob(results / "tiles", grid=grid)).status == "done"
        tiling = read_coords(results / "tiles" / "coords" / f"{volume_id}.h5")
        attention = 100.0 * tiling.annotation_fraction[:, 0] if tiling.classes else np.zeros(len(tiling))
        attention = attention + 0.01 * np.arange(len(tiling))  # lesion rows first, then the last slices
        path = results / "predict" / "attention" / f"{volume_id}.h5"
        write_patch_scores(path, attention[:, None], tiling.coords, tiling.attrs, {"slide_id": volume_id})
        label_name = "lesion" if probability > 0.5 else "normal"
        rows.append(f"{volume_id},{len(tiling)},{label_name},{1 - probability},{probability}")
    (results / "predict" / "predictions.csv").write_text("\n".join(rows) + "\n")
    if evaluate:
        job = VolumeWsolJob(results / "predict", results / "tiles", results / "evaluate", baselines=("uniform",),
                            calibration_ids=("vA", "vC"))  # fmt: skip
        run_volume_wsol(job)
    return results


def captions(html: str, volume_id: str) -> list[str]:
    block = html.split(f'id="volume-{volume_id}"')[1].split('<div class="volume"')[0]
    return re.findall(r"<figcaption>([^<]*)</figcaption>", block)


def test_volume_section_strips_planes_and_metrics(tmp_path: Path) -> None:
    results = make_run(tmp_path)
    html = write_report(load_inputs(results), tmp_path / "report.html").read_text()
    assert '<section id="volumes">' in html and "Volumes: attention along the slice axis" in html
    positions = [html.index(f'id="volume-{v}"') for v in ("vA", "vB", "vC")]
    assert positions == sorted(positions)  # highest predicted probability first
    assert html.count('alt="attention along the slice axis of') == 3
    assert html.count("data:image/png;base64") >= 3 and 'alt="voxel precision-recall curves"' in html
    top = captions(html, "vA")
    assert len(top) == 4 and all(c.startswith("slice ") for c in top)
    lesion_slices = {int(re.match(r"slice (\d+)", c).group(1)) for c in top[:3]}
    assert lesion_slices == set(range(*LESION_SLICES)) and "lesion 4%" in top[0]
    assert "lesion 0%" in captions(html, "vC")[0]
    # the localization metrics: the volume table, the model's numbers per volume, no slide WSOL section
    assert 'class="volume-wsol"' in html and "row AUROC" in html and '<section id="wsol">' not in html
    assert re.search(r"vB \(10 slices\).*test: PxAP \d\.\d{3}, row AUROC 1\.000", html)


def test_cap_missing_images_and_patches(tmp_path: Path) -> None:
    results = make_run(tmp_path / "a", evaluate=False)
    (tmp_path / "a" / "images" / "vB_ct.nii.gz").unlink()
    html = write_report(load_inputs(results, max_slides=2), tmp_path / "a.html").read_text()
    assert "2 of 3 volumes" in html and "1 volumes omitted" in html and 'id="volume-vC"' not in html
    block = html.split('id="volume-vB"')[1]
    assert "slices not drawn:" in block and "vB_ct.nii.gz" in block  # the strip is still there
    assert 'class="volume-wsol"' not in html  # no evaluation in this run
    patches = make_run(tmp_path / "b", mode="patches")
    html = write_report(load_inputs(patches), tmp_path / "b.html").read_text()
    assert re.search(r"vA \(\d+ patches\)", html) and len(captions(html, "vA")) == 4


def test_profile_and_top_slices() -> None:
    coords = np.array([[0, 0, 0], [4, 0, 2], [0, 4, 3]])
    best = profile(coords, 2, np.array([0.5, 1.0, 0.2]), 6, axis=2)
    np.testing.assert_array_equal(best, [0.5, 0.5, 1.0, 1.0, 0.2, np.nan])
    masked = profile(coords, 1, np.array([np.nan, 1.0, 0.2]), 4, axis=2)  # masked rows are left out
    np.testing.assert_array_equal(masked, [np.nan, np.nan, 1.0, 0.2])
    weights = np.array([0.5, 1.0, 0.2, 1.0])
    strip = Strip(best, None, 2, np.vstack([coords, [[0, 0, 2]]]), weights, None, np.array([4, 4, 2]))
    assert strip.top(3) == [(3, 1), (1, 0), (4, 2)]  # middle slices; row 3's slice is row 1's


def test_slides_have_no_volume_section(tmp_path: Path) -> None:
    results = tmp_path / "results"
    coords = np.array([[0, 0], [256, 0]])
    write_patch_scores(results / "predict" / "attention" / "s0.h5", np.ones((2, 1)), coords,
                       {"patch_size_level0": 256}, {})  # fmt: skip
    assert volume_section(load_inputs(results)) is None


@pytest.mark.parametrize("broken", ["not json", '{"kind": "volumes"}'])
def test_bad_volume_metrics_are_one_line_errors(tmp_path: Path, broken: str) -> None:
    results = make_run(tmp_path, evaluate=False)
    (results / "evaluate").mkdir()
    (results / "evaluate" / "metrics.json").write_text(broken)
    with pytest.raises(PathattnError, match="is not the output of 'pathattn evaluate wsol'"):
        write_report(load_inputs(results), tmp_path / "r.html")
