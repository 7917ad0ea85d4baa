"""Feature-extraction throughput: the whole pipeline against the same encoder on synthetic tensors.

Both run in the same process, on the same device, with the same batch size:

* pipeline: ``extract_batch`` over tiled slides (read + decode + resize in DataLoader workers, transfer,
  normalise, forward, write);
* model only: the encoder's forward on random tensors already on the device (channels_last, same
  precision), the upper bound the pipeline can reach.

Goal: pipeline >= 0.9 x model-only on a GPU. Usage::

    python benchmarks/extract.py                                   # resnet50_trunc on a generated cohort
    python benchmarks/extract.py --encoder resnet18 --device cuda --batch-size 256 --workers 8 --precision bf16
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from pathattn.extract.encoders import create_encoder
from pathattn.extract.run import Embedder, ExtractJob, extract_batch, find_coords
from pathattn.io.samples import read_sample_sheet
from pathattn.synth.cohort import generate_cohort
from pathattn.tile.run import TileJob, tile_batch


class BatchClock:
    """When the encoder finished each batch of the pipeline (a forward hook), for the steady-state rate.

    Args:
        model: the encoder's module (the one the pipeline calls).
    """

    def __init__(self, model: nn.Module) -> None:
        self.seen: list[tuple[float, int]] = []  # (time, rows embedded so far) after each batch
        self._hook = model.register_forward_hook(self._record)

    def _record(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        done = (self.seen[-1][1] if self.seen else 0) + len(inputs[0])
        self.seen.append((time.perf_counter(), done))

    def steady(self) -> float:
        """Rows/s after the first batch (the workers are up), then stop recording."""
        self._hook.remove()
        (first, n0), (last, n1) = self.seen[0], self.seen[-1]
        return (n1 - n0) / (last - first) if last > first else float("nan")


def model_only(embed: Embedder, batch_size: int, input_size: tuple[int, int], patches: int) -> float:
    """Patches/s of the forward pass alone on random uint8 batches already on the device."""
    images = torch.randint(0, 256, (batch_size, 3, *input_size), dtype=torch.uint8, device=embed.device)
    embed(images)  # warm-up
    if embed.device.type == "cuda":
        torch.cuda.synchronize()
    batches = max(1, round(patches / batch_size))
    start = time.perf_counter()
    for _ in range(batches):
        embed(images)  # returns features on the host, as the pipeline does
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="resnet50_trunc")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: 1 on CPU, up to 8 with a GPU")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--n-slides", type=int, default=2, help="synthetic slides (default size, 0.5 µm/px)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sheet = generate_cohort(Path(tmp) / "cohort", args.n_slides, seed=0)
        tiles = TileJob(Path(tmp) / "tiles")
        tile_batch(read_sample_sheet(sheet), tiles)
        files = find_coords(tiles.out)
        encoder = create_encoder(args.encoder)
        job = ExtractJob(Path(tmp) / "feats", args.batch_size, args.workers, args.device, args.precision)
        embed = Embedder(encoder, job)
        clock = BatchClock(encoder.model)
        start = time.perf_counter()
        results = extract_batch(files, encoder, job)
        end = time.perf_counter()
        patches = sum(r.n_patches for r in results)
        pipeline = patches / (end - start)
        steady = clock.steady()  # after the first batch: workers are up
        model = model_only(embed, args.batch_size, encoder.input_size, patches)
    device = embed.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"encoder: {encoder.name} ({encoder.embed_dim}-d, input {encoder.input_size}), batch {args.batch_size}, "
          f"workers {args.workers}, precision {args.precision}")  # fmt: skip
    print(f"slides: {len(results)}  patches: {patches}")
    print(f"pipeline, whole run          {pipeline:10.1f} patches/s  (includes starting the workers)")
    print(f"pipeline, after first batch  {steady:10.1f} patches/s")
    print(f"model only                   {model:10.1f} patches/s")
    print(
        f"ratio pipeline/model: {pipeline / model:.3f} whole run, {steady / model:.3f} steady  (goal >= 0.9 on a GPU)"
    )


if __name__ == "__main__":
    main()
