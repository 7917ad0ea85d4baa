"""Volume slice-extraction throughput: the whole pipeline against the same encoder on the same number of slices.

Both run in the same process, on the same device, with the same batch size (the structure of
``benchmarks/extract.py``, whose model-only loop and batch clock this reuses):

* pipeline: ``extract_batch`` over tiled CT volumes (in DataLoader workers: read the NIfTI, reorient,
  resample and window each volume once, then cut each slice in display orientation, resize and scale to
  uint8; transfer, normalise, forward, write);
* model only: the encoder's forward on random uint8 batches of the slices' shape already on the device
  (channels_last, same precision), the upper bound the pipeline can reach; measured just before and just
  after the pipeline and averaged, so that a shared machine's load drifts alike into both figures.

Goal: pipeline >= 0.9 x model-only at steady state on a GPU. Usage::

    python benchmarks/extract_volume.py                           # resnet18 on 4 CT volumes of 256 x 256 x 96
    python benchmarks/extract_volume.py --device cuda --batch-size 256 --precision bf16 --n-volumes 16
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract import BatchClock, model_only  # noqa: E402 - the slide benchmark, beside this file

from pathattn.extract.encoders import create_encoder  # noqa: E402
from pathattn.extract.run import Embedder, ExtractJob, extract_batch, find_coords  # noqa: E402
from pathattn.io.coords import read_coords  # noqa: E402
from pathattn.io.volume_samples import VolumeEntry  # noqa: E402
from pathattn.tile.volume import VolumeTileJob, tile_volume  # noqa: E402
from pathattn.tile.volume_grid import VolumeGridParams  # noqa: E402
from pathattn.volumes.prepare import PrepareParams, prepare_volume  # noqa: E402


def write_ct(path: Path, shape: tuple[int, int, int], seed: int) -> None:
    """A CT-like volume in HU (LPS, 0.8 x 0.8 x 3 mm): a textured body ellipsoid with bright blobs, in air."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape[:2]], indexing="ij")
    body = (i / 0.8) ** 2 + (j / 0.6) ** 2 <= 1
    hu = np.where(body[..., None], 40.0, -1000.0).astype(np.float32) + rng.normal(0, 30, shape).astype(np.float32)
    for _ in range(6):
        ci, cj, ck = (int(rng.integers(n // 4, 3 * n // 4)) for n in shape)
        hu[ci - 8 : ci + 8, cj - 8 : cj + 8, max(ck - 3, 0) : ck + 3] += 150
    nib.save(nib.Nifti1Image(hu.astype(np.int16), np.diag([-0.8, -0.8, 3.0, 1.0])), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: 1 on CPU, up to 8 with a GPU")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--n-volumes", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 96], help="voxels along i, j, k")
    parser.add_argument("--context", type=int, default=0, help="--context-slices of the tiling (0 or 1)")
    args = parser.parse_args()
    shape = tuple(args.shape)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        entries = []
        for n in range(args.n_volumes):
            write_ct(root / f"v{n}.nii.gz", shape, seed=n)
            entries.append(VolumeEntry(f"v{n}", {"CT": root / f"v{n}.nii.gz"}))
        tiles = VolumeTileJob(root / "tiles", VolumeGridParams(context=args.context, min_foreground=0.0))
        assert all(tile_volume(e, tiles).status == "done" for e in entries)
        start = time.perf_counter()
        prepare_volume(entries[0].paths, PrepareParams(), foreground=False)
        prepare_s = time.perf_counter() - start
        encoder = create_encoder(args.encoder)
        job = ExtractJob(root / "feats", args.batch_size, args.workers, args.device, args.precision)
        embed = Embedder(encoder, job)
        slices_total = sum(len(read_coords(f)) for f in find_coords(tiles.out))
        before = model_only(embed, args.batch_size, encoder.input_size, slices_total)
        clock = BatchClock(encoder.model)
        start = time.perf_counter()
        results = extract_batch(find_coords(tiles.out), encoder, job)
        end = time.perf_counter()
        assert all(r.status == "done" for r in results), [r.error for r in results]
        slices = sum(r.n_patches for r in results)
        pipeline = slices / (end - start)
        steady = clock.steady()
        after = model_only(embed, args.batch_size, encoder.input_size, slices)
        model = (before + after) / 2
    device = embed.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"encoder: {encoder.name} ({encoder.embed_dim}-d, input {encoder.input_size}), batch {args.batch_size}, "
          f"workers {args.workers}, precision {args.precision}")  # fmt: skip
    print(f"volumes: {len(results)} of {' x '.join(map(str, shape))} voxels  slices: {slices}  "
          f"context: {args.context}  preparing one volume: {prepare_s:.2f} s")  # fmt: skip
    print(f"pipeline, whole run          {pipeline:10.1f} slices/s  (includes starting the workers)")
    print(f"pipeline, after first batch  {steady:10.1f} slices/s")
    print(f"model only                   {model:10.1f} slices/s  (before {before:.1f}, after {after:.1f})")
    ratio = f"ratio pipeline/model: {pipeline / model:.3f} whole run, {steady / model:.3f} steady"
    print(f"{ratio}  (goal >= 0.9 on a GPU)")


if __name__ == "__main__":
    main()
