"""``pathattn extract``: patch features from a timm encoder, read straight from the tiled slides; slice features
(2-D encoders) or 3-D patch features (MONAI 3-D ResNets) read straight from the tiled volumes."""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = (
    "embed every tiled patch, volume slice or 3-D patch with an encoder (timm name, preset or hf-hub:), one "
    "feature file per slide or volume"
)


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``extract`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options (see configs/extract/)")
    p.add_argument("--coords", type=str, required=True, help="output folder of 'pathattn tile' (or its coords/)")
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="extract only these slides or volumes of --coords (one job per item)")  # fmt: skip
    p.add_argument("--out", type=str, required=True, help="run folder: h5_files/, pt_files/, manifest.csv")
    p.add_argument("--encoder", type=str, default="resnet50_trunc",
                   help="a preset (docs/extract.md; 3-D patches: resnet18_3d, ..., docs/volumes.md), a timm "
                   "model name, or hf-hub:ORG/NAME")  # fmt: skip
    p.add_argument("--weights", type=str | None, default=None,
                   help="weights file (.pth/.pt/.bin/.safetensors); without it: random init")  # fmt: skip
    p.add_argument("--samples", type=str | None, default=None,
                   help="sample sheet whose slide_path (slides) or <modality>_path (volumes) columns override the "
                   "paths of tiling")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="patches per forward pass")
    p.add_argument("--workers", type=int | None, default=None,
                   help="patch-reading processes (0: main process; default: 1 on CPU, up to 8 with a GPU)")  # fmt: skip
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when available), cpu or cuda[:i]")
    p.add_argument("--precision", type=str, default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="autocast precision of the forward pass")  # fmt: skip
    p.add_argument("--dtype", type=str, default="float32", choices=["float32", "float16"],
                   help="storage type of the features")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--clam-pt", action="store_true", help="also write CLAM's pt_files/{slide_id}.pt")
    p.add_argument("--overwrite", action="store_true", help="redo slides whose features exist")
    p.add_argument("--allow-failed", action="store_true", help="exit 0 even when some slides failed")
    subcommands.add_subcommand("extract", p, help=HELP)


def _job(cfg: Namespace):  # noqa: ANN202
    from pathattn.extract.run import ExtractJob

    if cfg.batch_size < 1:
        raise PathattnError("--batch-size must be at least 1")
    if cfg.workers is not None and cfg.workers < 0:
        raise PathattnError("--workers must be 0 (read in the main process) or more")
    return ExtractJob(
        Path(cfg.out), cfg.batch_size, cfg.workers, cfg.device, cfg.precision, cfg.dtype, cfg.clam_pt, cfg.compile,
        cfg.overwrite,
    )  # fmt: skip


def run(cfg: Namespace) -> int:
    """Extract features; exit 1 if a slide or volume failed (unless --allow-failed)."""
    from pathattn.extract.run import run_extract

    return run_extract(_job(cfg), cfg.coords, cfg.encoder, cfg.weights, cfg.slide_ids, cfg.samples, cfg.allow_failed)
