"""Image classification: the cost of MEDUSA's body against its backbone alone, and CAM throughput per method.

**Training** (images/s): a full step (forward, cross-entropy, backward, AdamW) on random images already on
the device, for the backbone alone (``MEDUSA(attention="none")``: the timm CNN, average pooling, a linear
layer), MEDUSA (body and heads) and its isolated-attention ablation, in the same process. The backbone is
measured before and after the others and its mean is the reference, so a drift of the machine shows as a
difference between the two. Parameters and MACs (:mod:`pathattn.models.complexity`) are printed beside.

**CAMs** (maps/s): :func:`pathattn.evaluate.cams.compute_cams` of every method on the timm classifier
(target layer: its last stage), and MEDUSA's own maps (one forward pass gives them). Score-CAM runs one
forward pass per channel of the target layer (512 for a ResNet-18), so it is measured on fewer images.

Usage (figures in docs/performance.md)::

    python benchmarks/classify.py                                   # CPU, ResNet-18, 224 px
    python benchmarks/classify.py --device cuda --batch-size 64 --steps 30
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import torch
from timing import rate
from torch import nn

from pathattn.evaluate.cams import CAM_METHODS, compute_cams
from pathattn.models.complexity import count_macs, count_parameters
from pathattn.models.image import MEDUSA, TimmClassifier


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One training step of ``model`` on a fixed batch, as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images).logits, labels).backward()
        optimizer.step()

    return step


def size(model: nn.Module, shape: tuple[int, ...]) -> str:
    """Parameters and MACs of one image, as text."""
    return f"params {count_parameters(model) / 1e6:.2f} M, MACs {count_macs(model, shape) / 1e9:.2f} G"


def training(args: argparse.Namespace, device: torch.device) -> None:
    torch.manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.side, args.side, device=device)
    labels = torch.randint(0, 2, (args.batch_size,), device=device)
    models = {name: MEDUSA(args.backbone, attention=name).to(device) for name in ("none", "body", "isolated")}
    shape = (1, 3, args.side, args.side)
    measure = {name: train_step(model, images, labels) for name, model in models.items()}
    before = rate(measure["none"], args.batch_size, args.steps, args.warmup, device)
    rates = {n: rate(measure[n], args.batch_size, args.steps, args.warmup, device) for n in ("body", "isolated")}
    after = rate(measure["none"], args.batch_size, args.steps, args.warmup, device)
    reference = (before + after) / 2
    print(f"training, batch {args.batch_size} x {args.side} px: images/s (ratio to the backbone alone)")
    label = f"backbone alone ({args.backbone})"
    drift = f"before {before:.1f}, after {after:.1f}"
    print(f"  {label:<27} {reference:8.1f}  (1.00x: {drift})  {size(models['none'], shape)}")
    for name, value in rates.items():
        label = "MEDUSA (body + heads)" if name == "body" else "isolated attention"
        print(f"  {label:<27} {value:8.1f}  ({value / reference:.2f}x)  {size(models[name], shape)}")


def cams(args: argparse.Namespace, device: torch.device) -> None:
    torch.manual_seed(0)
    classifier = TimmClassifier(args.backbone).to(device).eval()
    layer = (
        classifier.network.layer4 if hasattr(classifier.network, "layer4") else list(classifier.network.children())[-3]
    )
    network = classifier.network
    print(f"CAMs on {args.backbone}, {args.side} px: maps/s")
    for method in CAM_METHODS:
        n = args.scorecam_images if method == "scorecam" else args.cam_images
        images = torch.randn(n, 3, args.side, args.side, device=device)
        value = rate(lambda: compute_cams(network, layer, images, [1] * n, method), n, 1, 1, device)  # noqa: B023
        print(f"  {method:<10} {value:8.2f}  ({n} images)")
    medusa = MEDUSA(args.backbone).to(device).eval()
    images = torch.randn(args.cam_images, 3, args.side, args.side, device=device)
    with torch.no_grad():
        value = rate(lambda: medusa(images), args.cam_images, args.steps, args.warmup, device)
    print(f"  {'MEDUSA maps (body + 4 stages, one forward)':<10} {value:8.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--side", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--cam-images", type=int, default=16)
    p.add_argument("--scorecam-images", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {device}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    training(args, device)
    cams(args, device)


if __name__ == "__main__":
    main()
