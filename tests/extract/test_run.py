"""Feature extraction end to end on generated slides, against features computed by hand."""

import cv2
import numpy as np
import openslide
import pytest
import torch

from pathattn.cli.main import main
from pathattn.devices import resolve_device
from pathattn.errors import PathattnError
from pathattn.extract.encoders import create_encoder
from pathattn.extract.run import Embedder, ExtractJob, extract_batch, find_coords, resolve_workers
from pathattn.io.bags import read_bag
from pathattn.io.coords import read_coords
from pathattn.io.samples import SlideEntry
from pathattn.tile.run import tile_batch


def encoder():
    torch.manual_seed(0)
    return create_encoder("test_resnet")


def by_hand(encoder, slide_path, coords_file):
    """The same patches read directly with OpenSlide and transformed by hand."""
    data = read_coords(coords_file)
    level, size = int(data.attrs["patch_level"]), int(data.attrs["read_size"])
    height, width = encoder.input_size
    slide = openslide.OpenSlide(str(slide_path))
    images = []
    for x, y in data.coords.tolist():
        rgb = np.asarray(slide.read_region((x, y), level, (size, size)).convert("RGB"))
        images.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(encoder.mean).view(1, 3, 1, 1)) / torch.tensor(encoder.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return encoder.model.eval()(x).numpy()


@pytest.mark.parametrize("workers", [0, 2])
def test_features_equal_hand_computed(tiled, tmp_path, workers):
    enc = encoder()
    job = ExtractJob(tmp_path / "feats", batch_size=5, workers=workers, device="cpu")
    results = extract_batch(find_coords(tiled.out), enc, job)
    assert [(r.slide_id, r.status, r.n_patches) for r in results] == [("a", "done", 9), ("b", "done", 9)]
    for slide_id in ("a", "b"):
        bag = read_bag(job.features_path(slide_id))
        expected = by_hand(enc, tiled.out.parent / "slides" / f"{slide_id}.tif", tiled.coords_path(slide_id))
        np.testing.assert_allclose(bag.features, expected, rtol=1e-4, atol=1e-5)
        assert len(np.unique(bag.features.round(4), axis=0)) == 9  # every patch has its own features
        np.testing.assert_array_equal(bag.coords, read_coords(tiled.coords_path(slide_id)).coords)
        assert bag.attrs["encoder"] == "test_resnet" and bag.attrs["weights_sha256"] == "random-init"
        assert bag.attrs["embed_dim"] == enc.embed_dim and bag.attrs["target_mpp"] == 0.5


def test_resume_overwrite_float16_and_clam_pt(tiled, tmp_path):
    enc = encoder()
    job = ExtractJob(tmp_path / "feats", workers=0, device="cpu")
    extract_batch(find_coords(tiled.out), enc, job)
    mtime = job.features_path("a").stat().st_mtime_ns
    again = extract_batch(find_coords(tiled.out), enc, job)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert job.features_path("a").stat().st_mtime_ns == mtime
    job16 = ExtractJob(tmp_path / "feats", workers=0, device="cpu", dtype="float16", clam_pt=True, overwrite=True)
    assert [r.status for r in extract_batch(find_coords(tiled.out), enc, job16)] == ["done", "done"]
    bag = read_bag(job16.features_path("a"))
    assert bag.features.dtype == np.float16
    np.testing.assert_array_equal(read_bag(job16.pt_path("a")).features, bag.features)
    other = create_encoder("test_vit")
    with pytest.raises(PathattnError, match=r"slide a: .* encoder test_resnet \(this run: test_vit\); pass --over"):
        extract_batch(find_coords(tiled.out), other, job)
    rows = job.manifest_path.read_text().splitlines()
    assert rows[0].startswith("slide_id,status,n_patches,embed_dim,encoder") and len(rows) == 3


def test_zero_patch_missing_and_different_slides(make_slide, tiled, tmp_path, texture):
    blank = make_slide("blank", np.full((1536, 2048, 3), 242, np.uint8), mpp=0.25)
    small = make_slide("small", texture(1024, 1024), mpp=0.25)
    tile_batch([SlideEntry("blank", blank)], tiled)
    (tiled.out.parent / "slides" / "b.tif").rename(tmp_path / "moved.tif")  # b's slide is gone
    enc = encoder()
    job = ExtractJob(tmp_path / "feats", workers=0, device="cpu")
    results = {r.slide_id: r for r in extract_batch(find_coords(tiled.out), enc, job, {"a": small})}
    assert results["blank"].status == "empty"
    empty = read_bag(job.features_path("blank"))
    assert empty.features.shape == (0, enc.embed_dim) and empty.coords.shape == (0, 2)
    assert results["b"].status == "failed" and "not found" in results["b"].error
    assert results["a"].status == "failed" and "tiled from a 2048x1536 px slide" in results["a"].error
    assert not job.features_path("a").exists() and not job.features_path("b").exists()
    # the slide that moved is found again through a sample sheet
    again = extract_batch(find_coords(tiled.out), enc, job, {"b": tmp_path / "moved.tif"})
    assert {r.slide_id: r.status for r in again}["b"] == "done"


def test_cli(tiled, tmp_path, capsys):
    out = tmp_path / "feats"
    args = ["extract", "--coords", str(tiled.out), "--out", str(out), "--device", "cpu", "--workers", "0"]
    assert main([*args, "--encoder", "test_resnet", "--clam-pt"]) == 0
    assert (out / "pt_files" / "a.pt").exists() and (out / "h5_files" / "b.h5").exists()
    capsys.readouterr()
    assert main([*args, "--encoder", "resnet5O"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown encoder 'resnet5O'" in err[0] and "resnet50" in err[0]
    assert main([*args, "--encoder", "test_resnet", "--batch-size", "0"]) == 2
    assert main(["extract", "--coords", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "--coords folder not found" in capsys.readouterr().err


def test_compiled_encoder_gives_the_same_features(tmp_path):
    enc = encoder()
    images = torch.randint(0, 256, (4, 3, *enc.input_size), dtype=torch.uint8)
    eager = Embedder(enc, ExtractJob(tmp_path, device="cpu"))(images)
    compiled = Embedder(enc, ExtractJob(tmp_path, device="cpu", compile=True))(images)
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)


def test_devices_and_workers():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_workers(None, torch.device("cpu")) == 1 and resolve_workers(3, torch.device("cpu")) == 3
    if not torch.cuda.is_available():
        with pytest.raises(PathattnError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(PathattnError, match="not a device"):
        resolve_device("tpu9")


def test_cli_slide_ids(tiled, tmp_path, capsys):
    out = tmp_path / "feats"
    args = ["extract", "--coords", str(tiled.out), "--out", str(out), "--device", "cpu", "--workers", "0"]
    assert main([*args, "--encoder", "test_resnet", "--slide-ids", "b"]) == 0
    assert sorted(p.name for p in (out / "h5_files").iterdir()) == ["b.h5"]
    capsys.readouterr()
    assert main([*args, "--encoder", "test_resnet", "--slide-ids", "a", "c", "d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--slide-ids: 2 slide(s) not in --coords {tiled.out}: c, d;" in err[0]
    assert not (out / "h5_files" / "a.h5").exists()
