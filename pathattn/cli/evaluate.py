"""``pathattn evaluate wsol``: weakly supervised localization by the protocol of Choe et al. (docs/evaluate.md).

Two inputs:

* whole slides, ``--scores`` (``pathattn predict`` attention, ``pathattn explain`` effects, or per-patch HDF5)
  with ``--annotations`` (tumor GeoJSON) and ``--tiles`` (tissue): score rasters against tumor masks and
  lesion boxes, beside a uniform and a few-shot baseline;
* images, ``--maps`` (``{image_id}.npy`` score maps, e.g. CAMs) with ``--boxes`` and/or ``--masks``.

Both choose on a held-out calibration split and score the test split once; outputs: ``metrics.json``,
``summary.csv``, ``per_slide.csv`` (or ``per_image.csv``) and ``pr_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "evaluate where a weakly supervised model looks (WSOL metrics, calibrated on a held-out split)"
WSOL_HELP = "MaxBoxAcc, MaxBoxAccV2, PxAP, Dice/IoU, GT-known/Top-1 Loc of slide attention or image score maps"


def _add_common(p: ArgumentParser) -> None:
    p.add_argument("--out", type=str, required=True, help="output folder (metrics.json, summary.csv, ...)")
    p.add_argument("--calibration-ids", type=str | None, default=None, nargs="+",
                   help="held-out, fully annotated slides or images that choose thresholds and variants")  # fmt: skip
    p.add_argument("--n-calibration", type=int, default=6,
                   help="without --calibration-ids: how many to draw at random (slides: half with tumor)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of that draw (and of the few-shot baseline)")
    p.add_argument("--mode", type=str, default="default", choices=["default", "reference"],
                   help="metric conventions: documented default, or the published wsolevaluation code's")  # fmt: skip
    p.add_argument("--step", type=float, default=0.001, help="threshold grid step (thresholds 0, step, ..., < 1)")


def _add_slides(p: ArgumentParser) -> None:
    p.add_argument("--scores", type=str | None, default=None,
                   help="slides: 'pathattn predict' or 'explain' output, or a folder of per-patch .h5")  # fmt: skip
    p.add_argument("--annotations", type=str | None, default=None,
                   help="slides: folder of {slide_id}.geojson tumor annotations (an empty file: no tumor)")  # fmt: skip
    p.add_argument("--tiles", type=str | None, default=None,
                   help="slides: 'pathattn tile' output; its tissue/{slide_id}.geojson is evaluated")  # fmt: skip
    p.add_argument("--features", type=str | None, default=None,
                   help="slides: 'pathattn extract' output, for the few-shot baseline and explain records")  # fmt: skip
    p.add_argument("--dataset", type=str, default="attention",
                   help="slides: per-patch dataset of the score files (single_effect for explain records)")  # fmt: skip
    p.add_argument("--head", type=int, default=0, help="slides: column of (N, K) scores")
    p.add_argument("--annotation-classes", type=str | None, default=None, nargs="+",
                   help="slides: annotation classes that count as tumor (default: every class)")  # fmt: skip
    p.add_argument("--raster-mpp", type=float, default=16.0, help="slides: µm per pixel of the score rasters")
    p.add_argument("--normalise", type=str, default=["percentile"], nargs="+",
                   choices=["percentile", "minmax", "softmax", "raw"],
                   help="slides: per-slide patch normalisations to choose from on the calibration split")  # fmt: skip
    p.add_argument("--smooth-um", type=float, default=[0.0], nargs="+",
                   help="slides: Gaussian sigmas (µm) of raster smoothing to choose from (0: none)")  # fmt: skip
    p.add_argument("--baselines", type=str | None, default=None, nargs="*",
                   help="slides: uniform and/or few_shot (default: uniform, and few_shot with --features)")  # fmt: skip


def _add_images(p: ArgumentParser) -> None:
    p.add_argument("--maps", type=str | None, default=None, help="images: folder of {image_id}.npy score maps")
    p.add_argument("--boxes", type=str | None, default=None, help="images: CSV image_id,x0,y0,x1,y1 (inclusive)")
    p.add_argument("--image-sizes", type=str | None, default=None,
                   help="images: CSV image_id,width,height, to scale the boxes to the maps")  # fmt: skip
    p.add_argument("--masks", type=str | None, default=None,
                   help="images: folder of {image_id}.png masks (and {image_id}_ignore.png)")  # fmt: skip
    p.add_argument("--classification", type=str | None, default=None,
                   help="images: CSV image_id,correct (1/0) of the top-1 prediction, for Top-1 Loc")  # fmt: skip
    p.add_argument("--split", type=str | None, default=None, help="images: CSV image_id,split (calibration/test)")
    p.add_argument("--resize-maps", action="store_true", help="images: resize maps to their masks (bilinear)")


def register(subcommands: Any) -> None:
    """Add the ``evaluate`` command and its ``wsol`` subcommand."""
    parser = ArgumentParser(description=HELP[0].upper() + HELP[1:] + ".", exit_on_error=False)
    subcommands.add_subcommand("evaluate", parser, help=HELP)
    kinds = parser.add_subcommands(dest="kind")
    wsol = ArgumentParser(description=WSOL_HELP + " (give --scores or --maps).", exit_on_error=False)
    wsol.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    _add_common(wsol)
    _add_slides(wsol)
    _add_images(wsol)
    kinds.add_subcommand("wsol", wsol, help=WSOL_HELP)


def _path(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def _check(opts: Namespace) -> None:
    if (opts.scores is None) == (opts.maps is None):
        raise PathattnError("give --scores (whole slides) or --maps (images), not both or neither")
    if opts.scores is not None and opts.annotations is None:
        raise PathattnError("--scores needs --annotations (folder of {slide_id}.geojson tumor annotations)")
    if opts.annotations is not None and not Path(opts.annotations).is_dir():
        raise PathattnError(f"--annotations folder not found: {opts.annotations}")
    if not 0 < opts.step < 1:
        raise PathattnError(f"--step must be in (0, 1), e.g. 0.001; got {opts.step}")
    if not opts.raster_mpp > 0 or any(s < 0 for s in opts.smooth_um):
        raise PathattnError("--raster-mpp must be positive and --smooth-um values 0 or more")
    if opts.n_calibration < 1:
        raise PathattnError("--n-calibration must be at least 1")


def _slide_job(opts: Namespace) -> Any:
    from pathattn.evaluate.run import SlideWsolJob

    features = _path(opts.features)
    baselines = opts.baselines if opts.baselines is not None else ["uniform", *(["few_shot"] if features else [])]
    return SlideWsolJob(
        Path(opts.scores), Path(opts.annotations), Path(opts.out), tiles=_path(opts.tiles), features=features,
        dataset=opts.dataset, head=opts.head, classes=_tuple(opts.annotation_classes),
        calibration_ids=_tuple(opts.calibration_ids), n_calibration=opts.n_calibration, seed=opts.seed,
        raster_mpp=opts.raster_mpp, normalisations=tuple(opts.normalise), smooth_um=tuple(opts.smooth_um),
        baselines=tuple(baselines), mode=opts.mode, step=opts.step,
    )  # fmt: skip


def _image_job(opts: Namespace) -> Any:
    from pathattn.evaluate.images import ImageWsolJob

    return ImageWsolJob(
        Path(opts.maps), Path(opts.out), boxes=_path(opts.boxes), image_sizes=_path(opts.image_sizes),
        masks=_path(opts.masks), classification=_path(opts.classification), split=_path(opts.split),
        calibration_ids=_tuple(opts.calibration_ids), n_calibration=opts.n_calibration, seed=opts.seed,
        resize_maps=opts.resize_maps, mode=opts.mode, step=opts.step,
    )  # fmt: skip


def run(cfg: Namespace) -> int:
    """Run ``pathattn evaluate wsol``; return the exit code."""
    if cfg.kind != "wsol":
        raise PathattnError(f"unknown evaluation {cfg.kind!r}; use 'pathattn evaluate wsol'")
    opts = cfg.wsol
    _check(opts)
    if opts.scores is not None:
        from pathattn.evaluate.run import run_slide_wsol

        run_slide_wsol(_slide_job(opts))
    else:
        from pathattn.evaluate.images import run_image_wsol

        run_image_wsol(_image_job(opts))
    return 0
