"""`pathattn extract` on volumes: slices for 2-D encoders and 3-D patches for MONAI's 3-D ResNets, against
features computed by hand from the NIfTI files; resume, refusals and one bad volume among good ones."""

import json

import cv2
import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.networks import nets

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.extract.data import SlidePatches, batch_order
from pathattn.extract.encoders import create_encoder
from pathattn.extract.run import ExtractJob, extract_batch, find_coords
from pathattn.extract.volume_data import VolumePatches, check_encoder
from pathattn.io.bags import read_bag
from pathattn.io.coords import read_coords, write_coords
from pathattn.io.manifest import read_manifest
from pathattn.volumes.slices import slice_image

LPS = np.diag([-1.0, -1.0, 3.0, 1.0])  # 1 x 1 x 3 mm voxels, i towards the patient's left, j posterior
SHAPE = (48, 40, 12)


def lesion(shape=SHAPE):
    """The lesion's label volume (I, J, K) int16, as stored (LPS)."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return (((i - 30) / 4) ** 2 + ((j - 20) / 4) ** 2 + ((k - 6) / 2) ** 2 <= 1).astype(np.int16)


def body_volume(seed, shape=SHAPE):
    """CT in HU, (I, J, K) as stored (LPS): a textured body ellipsoid in air with a bright lesion."""
    rng = np.random.default_rng(seed)
    i, j, _ = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    body = ((i - 24) / 18) ** 2 + ((j - 20) / 14) ** 2 <= 1
    hu[body] = 40.0 + rng.normal(0, 60, body.sum())
    hu[lesion(shape) > 0] = 150.0
    return hu


def soft_tissue(hu):
    """The ct_soft_tissue window (level 40, width 400) by hand."""
    return np.clip((hu + 160.0) / 400.0, 0.0, 1.0).astype(np.float32)


def write_cohort(folder, names=("v1", "v2"), pet=False):
    """NIfTI CT (and PET) volumes in LPS with their lesion labels, and a volume sample sheet; returns the sheet."""
    rows = ["volume_id,label_path,ct_path" + (",pet_path" if pet else "")]
    for seed, name in enumerate(names):
        nib.save(nib.Nifti1Image(body_volume(seed), LPS), folder / f"{name}_ct.nii.gz")
        nib.save(nib.Nifti1Image(lesion(), LPS), folder / f"{name}_label.nii.gz")
        line = f"{name},{name}_label.nii.gz,{name}_ct.nii.gz"
        if pet:
            suv = np.clip(body_volume(seed + 10) / 40.0, 0, None).astype(np.float32)  # SUV 0..~5
            nib.save(nib.Nifti1Image(suv, LPS), folder / f"{name}_pet.nii.gz")
            line += f",{name}_pet.nii.gz"
        rows.append(line)
    sheet = folder / "samples.csv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def tile(sheet, out, *args):
    assert main(["tile", "--samples", str(sheet), "--out", str(out), "--min-foreground", "0", *map(str, args)]) == 0
    return out


def display(plane_ijk):
    """An axial plane of an LPS file as displayed (RAS flips i and j, the display flips them back): transposed."""
    return plane_ijk.T


def encode(encoder, images):
    """The encoder on (B, 3, H, W) uint8 images, normalised by hand."""
    x = torch.from_numpy(np.stack(images)).float() / 255
    x = (x - torch.tensor(encoder.mean).view(1, 3, 1, 1)) / torch.tensor(encoder.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return encoder.model.eval()(x).numpy()


def as_input(planes, size):
    """(n, H, W) [0, 1] planes → (3, h, w) uint8 by hand: bilinear resize (the planes are smaller), channel rule."""
    resized = [cv2.resize(p, size[::-1], interpolation=cv2.INTER_LINEAR) for p in planes]
    uint8 = [np.rint(np.clip(r, 0, 1) * 255).astype(np.uint8) for r in resized]
    rule = {1: (0, 0, 0), 2: (0, 1, 0), 3: (0, 1, 2)}[len(planes)]
    return np.stack([uint8[c] for c in rule])


@pytest.mark.parametrize(("context", "workers"), [(0, 0), (1, 2)])
def test_slice_features_equal_hand_computation(tmp_path, context, workers):
    sheet = write_cohort(tmp_path)
    tiles = tile(sheet, tmp_path / "tiles", "--context-slices", context)
    encoder = create_encoder("test_resnet")
    job = ExtractJob(tmp_path / "feats", batch_size=5, workers=workers, device="cpu")
    rows = extract_batch(find_coords(tiles), encoder, job)
    assert [(r.slide_id, r.status, r.n_patches) for r in rows] == [("v1", "done", 12), ("v2", "done", 12)]
    for seed, name in enumerate(("v1", "v2")):
        bag = read_bag(job.features_path(name))
        hu = body_volume(seed)
        images = []
        for k in (0, 5, 11):
            picks = [min(max(k + o, 0), SHAPE[2] - 1) for o in range(-context, context + 1)]
            images.append(as_input([display(soft_tissue(hu[:, :, p])) for p in picks], encoder.input_size))
        np.testing.assert_allclose(bag.features[[0, 5, 11]], encode(encoder, images), rtol=1e-4, atol=1e-4)
        assert len(np.unique(bag.features.round(4), axis=0)) == 12  # every slice has its own features
        assert bag.coords.tolist() == [[0, 0, k] for k in range(12)]
        attrs = bag.attrs
        assert attrs["volume_id"] == name and attrs["axis"] == "axial" and attrs["context_slices"] == context
        assert attrs["spacing"] == pytest.approx([1, 1, 3]) and attrs["modality"] == "CT"
        expected = ["CT"] * 3 if context == 0 else ["CT@-1", "CT@0", "CT@+1"]
        assert json.loads(attrs["input_channels"]) == expected
        assert attrs["encoder"] == "test_resnet" and attrs["weights_sha256"] == "random-init"
        assert attrs["coords"]["coord_space"] == "voxel_ijk" and attrs["coords"]["name"] == name
        assert attrs["coords"]["label_path"] == str(tmp_path / f"{name}_label.nii.gz")


def test_pet_ct_slices_follow_the_channel_rule(tmp_path, capsys):
    sheet = write_cohort(tmp_path, ("v1",), pet=True)
    tiles = tile(sheet, tmp_path / "tiles")
    encoder = create_encoder("test_resnet")
    job = ExtractJob(tmp_path / "feats", batch_size=4, workers=0, device="cpu")
    assert [r.status for r in extract_batch(find_coords(tiles), encoder, job)] == ["done"]
    bag = read_bag(job.features_path("v1"))
    assert json.loads(bag.attrs["input_channels"]) == ["CT", "PET", "CT"]
    ct, suv = body_volume(0), np.clip(body_volume(10) / 40.0, 0, None)
    k = 6
    planes = [display(soft_tissue(ct[:, :, k])), display(np.clip(suv[:, :, k] / 20.0, 0, 1).astype(np.float32))]
    np.testing.assert_allclose(bag.features[k], encode(encoder, [as_input(planes, encoder.input_size)])[0], atol=1e-4)
    # --channels PET: the CT still gives the grid and the body, the encoder sees the PET alone (P, P, P)
    pet_only = tile(sheet, tmp_path / "pet_only", "--channels", "pet")
    assert read_coords(pet_only / "coords" / "v1.h5").attrs["channels"] == "PET"
    job = ExtractJob(tmp_path / "pet_feats", batch_size=4, workers=0, device="cpu")
    assert [r.status for r in extract_batch(find_coords(pet_only), encoder, job)] == ["done"]
    bag = read_bag(job.features_path("v1"))
    assert json.loads(bag.attrs["input_channels"]) == ["PET"] * 3 and bag.attrs["channels"] == "PET"
    expected = encode(encoder, [as_input(planes[1:], encoder.input_size)])[0]
    np.testing.assert_allclose(bag.features[k], expected, atol=1e-4)
    capsys.readouterr()
    assert main(["tile", "--samples", str(sheet), "--out", str(tmp_path / "mr"), "--channels", "MR"]) == 1
    assert "--channels MR: the volume has CT, PET" in capsys.readouterr().err
    # 2 modalities x 3 slices = 6 channels: refused before reading, naming --context-slices
    wide = tile(sheet, tmp_path / "wide", "--context-slices", "1")
    args = ["extract", "--coords", str(wide), "--out", str(tmp_path / "f2"), "--encoder", "test_resnet"]
    capsys.readouterr()
    assert main([*args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "6 channels" in err[0] and "--context-slices 0" in err[0]


def test_3d_patches_equal_monai_by_hand(tmp_path):
    sheet = write_cohort(tmp_path, ("v1",))
    tiles = tile(sheet, tmp_path / "tiles", "--volume-mode", "patches", "--patch-size-mm", "12")
    coords = read_coords(tiles / "coords" / "v1.h5")
    assert coords.attrs["patch_size_vox"] == [12, 12, 4]
    encoder = create_encoder("resnet10_3d")
    assert (encoder.embed_dim, encoder.spatial_dims, encoder.in_channels) == (512, 3, 1)
    job = ExtractJob(tmp_path / "feats", batch_size=4, workers=0, device="cpu")
    assert [r.status for r in extract_batch(find_coords(tiles), encoder, job)] == ["done"]
    bag = read_bag(job.features_path("v1"))
    assert bag.features.shape == (len(coords), 512) and bag.attrs["input_size"] == [12, 12, 4]
    # MONAI's ResNet-10 drawn from the same seed, applied to the patches cut by hand from the file
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = nets.resnet10(spatial_dims=3, n_input_channels=1, feed_forward=False, shortcut_type="B",
                                  bias_downsample=False, conv1_t_size=7, conv1_t_stride=2).eval()  # fmt: skip
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(encoder.model.state_dict()[key], value)
    ras = soft_tissue(body_volume(0))[::-1, ::-1, :]  # the LPS file reoriented to RAS by hand
    rows = [0, len(coords) // 2, len(coords) - 1]
    patches = [ras[i : i + 12, j : j + 12, k : k + 4] for i, j, k in coords.coords[rows]]
    x = (torch.from_numpy(np.stack(patches)[:, None].copy()) - 0.5) / 0.5
    with torch.inference_mode():
        expected = reference(x).numpy()
    np.testing.assert_allclose(bag.features[rows], expected, rtol=1e-4, atol=1e-4)
    # local weights: loaded strictly, recorded by their SHA-256
    weights = tmp_path / "r10.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, weights)
    loaded = create_encoder("resnet10_3d", weights)
    assert loaded.weights_sha256 != "random-init"
    other = ExtractJob(tmp_path / "feats_w", batch_size=4, workers=0, device="cpu")
    extract_batch(find_coords(tiles), loaded, other)
    np.testing.assert_allclose(read_bag(other.features_path("v1")).features, bag.features, rtol=1e-4, atol=1e-4)
    with pytest.raises(PathattnError, match=r"does not fit encoder 'resnet18_3d'"):
        create_encoder("resnet18_3d", weights)
    # a 2-D encoder on 3-D patches, a 3-D encoder on slices: one-line errors naming --encoder
    with pytest.raises(PathattnError, match=r"holds 3-D patches .* --encoder test_resnet is a 2-D"):
        extract_batch(find_coords(tiles), create_encoder("test_resnet"), job)
    slices = tile(sheet, tmp_path / "slices")
    with pytest.raises(PathattnError, match=r"holds 2-D slices .* --encoder resnet10_3d is a 3-D encoder"):
        extract_batch(find_coords(slices), encoder, ExtractJob(tmp_path / "f3", workers=0, device="cpu"))


def test_resume_and_refusals(tmp_path):
    sheet = write_cohort(tmp_path, ("v1",))
    tiles = tile(sheet, tmp_path / "tiles")
    encoder = create_encoder("test_resnet")
    job = ExtractJob(tmp_path / "feats", batch_size=8, workers=0, device="cpu")
    extract_batch(find_coords(tiles), encoder, job)
    mtime = job.features_path("v1").stat().st_mtime_ns
    assert [r.status for r in extract_batch(find_coords(tiles), encoder, job)] == ["skipped"]
    assert job.features_path("v1").stat().st_mtime_ns == mtime
    # other preparation settings (another window): the same coordinates, but not the same voxels
    tile(sheet, tiles, "--preset", "ct_lung", "--overwrite")
    assert read_coords(tiles / "coords" / "v1.h5").coords.tolist() == [[0, 0, k] for k in range(12)]
    with pytest.raises(PathattnError, match=r"volume v1: .* other coordinates .*--overwrite"):
        extract_batch(find_coords(tiles), encoder, job)
    # other coordinates
    tile(sheet, tiles, "--overwrite")
    assert [r.status for r in extract_batch(find_coords(tiles), encoder, job)] == ["skipped"]
    data = read_coords(tiles / "coords" / "v1.h5")
    data.coords, data.tissue_fraction = data.coords[1:], data.tissue_fraction[1:]
    data.annotation_fraction = data.annotation_fraction[1:]
    write_coords(tiles / "coords" / "v1.h5", data)
    with pytest.raises(PathattnError, match=r"volume v1: .* other coordinates"):
        extract_batch(find_coords(tiles), encoder, job)
    again = ExtractJob(tmp_path / "feats", batch_size=8, workers=0, device="cpu", overwrite=True)
    assert [(r.status, r.n_patches) for r in extract_batch(find_coords(tiles), encoder, again)] == [("done", 11)]


def test_a_bad_volume_fails_alone_and_cli(tmp_path, capsys):
    sheet = write_cohort(tmp_path, ("v1", "v2", "v3"))
    tiles = tile(sheet, tmp_path / "tiles")
    (tmp_path / "v2_ct.nii.gz").rename(tmp_path / "moved_ct.nii.gz")  # deleted (moved) after tiling
    nib.save(nib.Nifti1Image(body_volume(2, (48, 40, 10)), LPS), tmp_path / "v3_ct.nii.gz")  # changed after tiling
    out = tmp_path / "feats"
    args = ["extract", "--coords", str(tiles), "--out", str(out), "--device", "cpu", "--batch-size", "4"]
    capsys.readouterr()
    assert main([*args, "--encoder", "test_resnet", "--workers", "1"]) == 1
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["v1"]["status"] == "done" and rows["v1"]["n_patches"] == "12"
    assert rows["v2"]["status"] == "failed" and "v2_ct.nii.gz is not found" in rows["v2"]["error"]
    assert "--samples" in rows["v2"]["error"] and "\n" not in rows["v2"]["error"]
    assert rows["v3"]["status"] == "failed" and "now gives a 48x40x10 grid" in rows["v3"]["error"]
    assert (out / "h5_files" / "v1.h5").is_file() and not (out / "h5_files" / "v2.h5").exists()
    assert not (out / "h5_files" / "v3.h5").exists()
    err = capsys.readouterr().err
    assert "2 of 3" in err and "v2" in err
    # the moved image is found again through a sample sheet; v1 is kept, v3 still fails
    moved = tmp_path / "moved.csv"
    moved.write_text("volume_id,ct_path\nv1,v1_ct.nii.gz\nv2,moved_ct.nii.gz\n")
    again = ["--encoder", "test_resnet", "--workers", "0", "--samples", str(moved), "--slide-ids", "v2"]
    assert main([*args, *again]) == 0
    with h5py.File(out / "h5_files" / "v2.h5") as f:
        assert f["features"].shape == (12, 96) and f["coords"].shape == (12, 3)
        assert f.attrs["volume_id"] == "v2" and f["coords"].attrs["coord_space"] == "voxel_ijk"
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["v2"]["status"] == "done" and rows["v2"]["slide_path"] == str(tmp_path / "moved_ct.nii.gz")


def test_channel_rule_and_encoder_checks(tmp_path):
    planes = np.stack([np.full((4, 6), v, np.float32) for v in (0.2, 0.6, 1.5)])
    assert slice_image(planes[:1], (4, 6))[:, 0, 0].tolist() == [51, 51, 51]  # one plane repeated
    assert slice_image(planes[:2], (4, 6))[:, 0, 0].tolist() == [51, 153, 51]  # (a, b, a)
    assert slice_image(planes, (8, 12))[:, 0, 0].tolist() == [51, 153, 255]  # RGB, clipped to [0, 1]
    three_d = create_encoder("resnet18_3d", in_channels=2)
    assert three_d.embed_dim == 512 and three_d.model(torch.zeros(1, 2, 8, 8, 4)).shape == (1, 512)
    with pytest.raises(PathattnError, match=r"--encoder resnet18_3d is a 3-D encoder .* holds slide patches"):
        check_encoder(three_d, {"patch_size": 256}, tmp_path / "s.h5")
    patches = {"coord_space": "voxel_ijk", "mode": "patches", "modality": "PET,CT,MR"}
    with pytest.raises(PathattnError, match=r"3 channels \(PET,CT,MR\) but --encoder resnet18_3d was built for 2"):
        check_encoder(three_d, patches, tmp_path / "v.h5")
    slices = {"coord_space": "voxel_ijk", "mode": "slices", "modality": "CT", "context_slices": 2}
    with pytest.raises(PathattnError, match=r"5 channels .* --context-slices 2\) .* --context-slices 0 or 1"):
        check_encoder(create_encoder("test_resnet"), slices, tmp_path / "v.h5")


def test_batch_order():
    slides = [SlidePatches(None, np.zeros((n, 2)), 0, 1) for n in (3, 4)]
    assert batch_order(slides, (8, 8), 3, 2) == [[0, 1, 2], [3, 4, 5], [6]]  # as before: consecutive rows
    volumes = [VolumePatches(f"v{i}", {}, ("CT",), (0,), None, np.zeros((n, 3)), "patches", 2, 0, size, (9, 9, 9))
               for i, (n, size) in enumerate([(5, (2, 2, 2)), (2, (2, 2, 2)), (2, (3, 3, 3))])]  # fmt: skip
    order = batch_order(volumes, (8, 8), 2, 2)
    # v0 (rows 0-4) to worker 0, v1 and v2 (rows 5-6, 7-8) to worker 1, never mixing patch shapes
    assert order == [[0, 1], [5, 6], [2, 3], [7, 8], [4]]
    assert sorted(i for batch in order for i in batch) == list(range(9))
    assert all(batch in ([0, 1], [2, 3], [4]) for batch in order[0::2])  # worker 0 only reads v0
