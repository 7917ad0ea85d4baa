"""Volume tiling against a bare MONAI load of the same volume (LoadImage + Orientation + Spacing), same run.

Tiling a volume (read, reorient, resample, foreground, presets, grid, fractions, QC image, NIfTI mask and
HDF5 writing) should cost at most 25% more than loading it with MONAI's transforms alone:

    python benchmarks/tile_volume.py                        # a generated 512 x 512 x 160 CT, 0.8 x 0.8 x 2.5 mm
    python benchmarks/tile_volume.py --volumes a.nii.gz b.nii.gz --spacing 1 1 3
    python benchmarks/tile_volume.py --mode patches --patch-size-mm 32

Prints the median seconds of each and the ratio tiling / bare load.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation, Spacing

from pathattn.io.volume_samples import VolumeEntry
from pathattn.tile.volume import VolumeTileJob, tile_volume
from pathattn.tile.volume_grid import VolumeGridParams
from pathattn.volumes.prepare import PrepareParams


def generated_ct(path: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> Path:
    """A CT-like NIfTI in LPS: an elliptic body of soft tissue with lungs and noise, air around it."""
    rng = np.random.default_rng(0)
    i, j = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (i / 0.85) ** 2 + (j / 0.65) ** 2 <= 1
    lungs = ((np.abs(i) - 0.4) / 0.25) ** 2 + (j / 0.35) ** 2 <= 1
    plane = np.where(body, 40.0, -1000.0) + np.where(lungs & body, -840.0, 0.0)
    volume = np.repeat(plane[..., None], shape[2], axis=2).astype(np.float32)
    volume += rng.normal(0, 15, shape).astype(np.float32)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def bare_load(path: Path, spacing: tuple[float | None, ...]) -> float:
    """Seconds to load the volume with MONAI: LoadImage, channel first, RAS, resampled when asked."""
    start = time.perf_counter()
    steps = [LoadImage(image_only=True, reader="NibabelReader"), EnsureChannelFirst(), Orientation(axcodes="RAS")]
    image = Compose(steps)(str(path))
    if any(s is not None for s in spacing):
        current = image.pixdim.tolist()
        image = Spacing(pixdim=[c if s is None else s for c, s in zip(current, spacing, strict=True)])(image)
    float(image.sum())  # make sure the work happened
    return time.perf_counter() - start


def pathattn_tile(path: Path, out: Path, job_args: dict) -> float:
    """Seconds to tile the volume with pathattn (every output written)."""
    job = VolumeTileJob(out, overwrite=True, **job_args)
    start = time.perf_counter()
    row = tile_volume(VolumeEntry(path.name.split(".")[0], {"CT": path}), job)
    seconds = time.perf_counter() - start
    if row.status != "done":
        raise SystemExit(f"tiling failed: {row.error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", nargs="+", help="NIfTI CT volumes (default: one generated)")
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 160], help="generated volume size")
    parser.add_argument("--spacing", type=float, nargs=3, default=None, help="resample to this spacing, mm")
    parser.add_argument("--mode", choices=["slices", "patches"], default="slices")
    parser.add_argument("--patch-size-mm", type=float, default=32.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the median is reported)")
    args = parser.parse_args()
    spacing = tuple(args.spacing) if args.spacing else (None, None, None)
    job_args = {"grid": VolumeGridParams(args.mode, patch_size_mm=args.patch_size_mm),
                "prepare": PrepareParams(spacing)}  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        volumes = [Path(v) for v in args.volumes or []]
        if not volumes:
            volumes = [generated_ct(Path(tmp) / "ct.nii.gz", tuple(args.shape), (0.8, 0.8, 2.5))]
        pathattn_tile(volumes[0], Path(tmp) / "warmup", job_args)  # imports and first-call costs out of the timing
        bare, ours = [], []
        for _ in range(args.repeat):
            bare.append(sum(bare_load(v, spacing) for v in volumes))
            ours.append(sum(pathattn_tile(v, Path(tmp) / "tiles", job_args) for v in volumes))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}; volumes: {len(volumes)}")
    print(f"bare MONAI load (LoadImage + Orientation + Spacing): {b:.2f} s")
    print(f"pathattn tile ({args.mode}, every output written):     {o:.2f} s")
    print(f"ratio tiling / bare load: {o / b:.2f}  (goal: <= 1.25)")


if __name__ == "__main__":
    main()
