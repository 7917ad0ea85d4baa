"""Segmentation networks: Attention U-Net against its parameter-matched U-Net (training) and MONAI's AttentionUnet
(sliding-window inference), in one process.

**Training**: a full step (forward, MONAI's DiceCE loss, backward, AdamW) on a fixed random batch of 3-D
patches with a random label, for ``unet`` (measured before and after, its mean is the reference),
``attention_unet`` and ``monai_attention_unet`` of the same widths; the ratio to the U-Net is the cost of the
gates (goal: <= 1.1x). Beside it, the bytes autograd saves for the backward pass (the training activations;
on CUDA also the peak allocated memory), and the parameter counts.

**Inference**: MONAI's ``sliding_window_inference`` (Gaussian blending, overlap 0.25) over one volume, voxels/s,
for ``attention_unet`` and ``monai_attention_unet``.

Usage (figures in docs/performance.md)::

    python benchmarks/segment.py                                  # CPU: 64^3 patches, batch 2
    python benchmarks/segment.py --device cuda --side 128 --batch-size 2 --steps 10 --volume 256 256 160
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from timing import rate, saved_for_backward, synchronize
from torch import nn

from pathattn.models.complexity import count_parameters
from pathattn.registry import create_model

MODELS = ("unet", "attention_unet", "monai_attention_unet")


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One training step of ``model`` on a fixed batch, as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model(images).logits, labels).backward()
        optimizer.step()

    return step


def peak_memory(step: Callable[[], None], device: torch.device) -> str:
    """Peak CUDA memory of one step, as text (nothing on CPU)."""
    if device.type != "cuda":
        return ""
    torch.cuda.reset_peak_memory_stats(device)
    step()
    synchronize(device)
    return f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"


def training(args: argparse.Namespace, models: dict[str, nn.Module], device: torch.device) -> None:
    torch.manual_seed(0)
    side = (args.side,) * 3
    images = torch.randn(args.batch_size, 1, *side, device=device)
    labels = (torch.rand(args.batch_size, 1, *side, device=device) > 0.9).long()
    steps = {name: train_step(model, images, labels) for name, model in models.items()}
    before = rate(steps["unet"], args.batch_size, args.steps, args.warmup, device)
    rates = {name: rate(steps[name], args.batch_size, args.steps, args.warmup, device) for name in MODELS[1:]}
    after = rate(steps["unet"], args.batch_size, args.steps, args.warmup, device)
    reference = (before + after) / 2
    print(f"training, batch {args.batch_size} x {args.side}^3: seconds per step (ratio to the U-Net)")
    for name in MODELS:
        value = reference if name == "unet" else rates[name]
        drift = (
            f"; before {args.batch_size / before:.2f} s, after {args.batch_size / after:.2f} s"
            if name == "unet"
            else ""
        )
        saved = saved_for_backward(lambda: models[name](images).logits) / 2**20  # noqa: B023
        print(f"  {name:<22} {args.batch_size / value:7.2f} s  ({reference / value:.2f}x{drift})  params "
              f"{count_parameters(models[name]) / 1e6:.2f} M, saved for backward {saved:.0f} MiB"
              f"{peak_memory(steps[name], device)}")  # fmt: skip


def inference(args: argparse.Namespace, models: dict[str, nn.Module], device: torch.device) -> None:
    torch.manual_seed(0)
    volume = torch.randn(1, 1, *args.volume, device=device)
    roi = (args.side,) * 3
    print(f"sliding-window inference, volume {'x'.join(map(str, args.volume))}, roi {args.side}^3, overlap 0.25, "
          "Gaussian: voxels/s")  # fmt: skip
    for name in MODELS[1:]:
        model = models[name].eval()
        with torch.inference_mode():
            value = rate(lambda: sliding_window_inference(volume, roi, args.batch_size, lambda x: model(x).logits,  # noqa: B023
                                                          overlap=0.25, mode="gaussian"),
                         volume.numel(), args.steps, args.warmup, device)  # fmt: skip
        print(f"  {name:<22} {value / 1e6:7.2f} M voxels/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--side", type=int, default=64, help="side of the cubic training patch and inference window")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--channels", type=int, nargs=5, default=[16, 32, 64, 128, 256])
    p.add_argument("--volume", type=int, nargs=3, default=[160, 160, 96], help="voxels of the inference volume")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"{platform.machine()}, torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    models = {n: create_model(n, spatial_dims=3, in_channels=1, out_channels=2, channels=args.channels).to(device)
              for n in MODELS}  # fmt: skip
    training(args, models, device)
    inference(args, models, device)


if __name__ == "__main__":
    main()
