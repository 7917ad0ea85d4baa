"""``pathattn evaluate wsol``: weakly supervised localization by the protocol of Choe et al. (docs/evaluate.md).

Two inputs:

* whole slides, ``--scores`` (``pathattn predict`` attention, ``pathattn explain`` effects, or per-patch HDF5)
  with ``--annotations`` (tumor GeoJSON) and ``--tiles`` (tissue): score rasters against tumor masks and
  lesion boxes, beside a uniform and a few-shot baseline;
* volumes, ``--scores`` whose coordinates are voxels (``coord_space = voxel_ijk``) with ``--tiles`` (the
  volume tiling, whose coordinates files carry the label fractions): per-slice or per-patch scores against
  the lesion (:mod:`pathattn.evaluate.volumes`);
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
MIN_STEP = 1e-4  # the threshold grid holds 1 / step thresholds per map
MAX_SMOOTH_PX = 50  # wider Gaussian smoothing is slow and blurs across the slide


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
                   help="slides, volumes: 'pathattn predict' or 'explain' output, or a folder of per-patch "
                        ".h5")  # fmt: skip
    p.add_argument("--annotations", type=str | None, default=None,
                   help="slides: folder of {slide_id}.geojson tumor annotations (an empty file: no tumor)")  # fmt: skip
    p.add_argument("--tiles", type=str | None, default=None,
                   help="'pathattn tile' output (slides: tissue/{id}.geojson; volumes: label fractions)")  # fmt: skip
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
                   help="uniform and/or few_shot (default: uniform, plus few_shot with --features)")  # fmt: skip
    p.add_argument("--positive-fraction", type=float | None, default=None,
                   help="volumes: a slice or patch is positive above this lesion fraction (default 0)")  # fmt: skip


def _add_images(p: ArgumentParser) -> None:
    p.add_argument("--maps", type=str | None, default=None,
                   help="images: folder of {image_id}.npy score maps, or of one such folder per method, or the "
                        "output folder of 'pathattn cams' (its maps/ and truth files)")  # fmt: skip
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


def _is_volume_run(opts: Namespace) -> bool:
    """Whether ``--scores`` holds volumes: its coordinates say ``coord_space = voxel_ijk`` (docs/evaluate.md).

    Unreadable scores are left to the slide path, which reports them as before.
    """
    if opts.scores is None or opts.maps is not None or not Path(opts.scores).is_dir():
        return False
    from pathattn.evaluate.volumes import coordinate_space
    from pathattn.io.coords import VOXEL_IJK

    try:
        return coordinate_space(Path(opts.scores), _path(opts.features)) == VOXEL_IJK
    except PathattnError:
        return False


def _check_volumes(opts: Namespace) -> None:
    """The options of a volume run (``--scores`` with voxel coordinates)."""
    if opts.tiles is None or not Path(opts.tiles).is_dir():
        raise PathattnError(f"--scores {opts.scores} holds volumes: pass --tiles, the volume tiling folder whose "
                            f"coords/{{volume_id}}.h5 carry the label fractions (got {opts.tiles})")  # fmt: skip
    if opts.annotations is not None:
        raise PathattnError("--annotations is for slides; volumes take their lesion from the label fractions of "
                            "--tiles, so drop --annotations")  # fmt: skip
    if any(s != 0 for s in opts.smooth_um):
        raise PathattnError("--smooth-um is for slide rasters; drop it for volumes")
    positive = opts.positive_fraction if opts.positive_fraction is not None else 0.0
    if not 0 <= positive < 1:
        raise PathattnError(f"--positive-fraction must be in [0, 1) (0: a row is positive when it crosses a "
                            f"lesion); got {positive}")  # fmt: skip


def _check(opts: Namespace, volumes: bool = False) -> None:
    if (opts.scores is None) == (opts.maps is None):
        raise PathattnError("give --scores (whole slides) or --maps (images), not both or neither")
    if volumes:
        _check_volumes(opts)
    elif opts.positive_fraction is not None:
        raise PathattnError("--positive-fraction is for volumes (scores with voxel coordinates); drop it")
    if opts.scores is not None and opts.annotations is None and not volumes:
        raise PathattnError("--scores needs --annotations (folder of {slide_id}.geojson tumor annotations)")
    if opts.annotations is not None and not Path(opts.annotations).is_dir():
        raise PathattnError(f"--annotations folder not found: {opts.annotations}")
    if not MIN_STEP <= opts.step < 1:
        raise PathattnError(f"--step must be in [{MIN_STEP:g}, 1) (at most {1 / MIN_STEP:,.0f} thresholds), e.g. "
                            f"0.001; got {opts.step}")  # fmt: skip
    if opts.n_calibration < 1 or opts.seed < 0:
        raise PathattnError("--n-calibration must be at least 1 and --seed 0 or more")
    if opts.scores is not None and not volumes:
        _check_rasters(opts.raster_mpp, opts.smooth_um)


def _check_rasters(raster_mpp: float, smooth_um: list[float]) -> None:
    """The slide options that need no data (``--raster-mpp`` is checked against the slides later)."""
    if not raster_mpp > 0:
        raise PathattnError(f"--raster-mpp must be positive (µm per raster pixel, e.g. 16); got {raster_mpp}")
    widest = MAX_SMOOTH_PX * raster_mpp
    if any(not 0 <= s <= widest for s in smooth_um):
        raise PathattnError(
            f"--smooth-um values must be in [0, {widest:g}] (0: none; at most {MAX_SMOOTH_PX} raster pixels of "
            f"--raster-mpp {raster_mpp:g}); got {' '.join(f'{s:g}' for s in smooth_um)}"
        )


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


def _volume_job(opts: Namespace) -> Any:
    from pathattn.evaluate.volume_run import VolumeWsolJob

    features = _path(opts.features)
    baselines = opts.baselines if opts.baselines is not None else ["uniform", *(["few_shot"] if features else [])]
    positive = opts.positive_fraction if opts.positive_fraction is not None else 0.0
    return VolumeWsolJob(
        Path(opts.scores), Path(opts.tiles), Path(opts.out), features=features, dataset=opts.dataset, head=opts.head,
        classes=_tuple(opts.annotation_classes), positive_fraction=positive,
        calibration_ids=_tuple(opts.calibration_ids), n_calibration=opts.n_calibration, seed=opts.seed,
        normalisations=tuple(opts.normalise), baselines=tuple(baselines), mode=opts.mode, step=opts.step,
    )  # fmt: skip


def _cams_folder(opts: Namespace) -> None:
    """``--maps`` naming the output folder of ``pathattn cams``: its maps/, and its truth files where not given."""
    folder = Path(opts.maps)
    if not (folder / "cams.json").is_file():
        return
    opts.maps = str(folder / "maps")
    written = {"masks": folder / "masks", "boxes": folder / "boxes.csv", "split": folder / "split.csv",
               "classification": folder / "classification.csv"}  # fmt: skip
    for option, path in written.items():
        if getattr(opts, option) is None and path.exists():
            setattr(opts, option, str(path))


def _image_job(opts: Namespace) -> Any:
    from pathattn.evaluate.images import ImageWsolJob

    _cams_folder(opts)
    return ImageWsolJob(
        Path(opts.maps), Path(opts.out), boxes=_path(opts.boxes), image_sizes=_path(opts.image_sizes),
        masks=_path(opts.masks), classification=_path(opts.classification), split=_path(opts.split),
        calibration_ids=_tuple(opts.calibration_ids), n_calibration=opts.n_calibration, seed=opts.seed,
        resize_maps=opts.resize_maps, mode=opts.mode, step=opts.step,
        baselines=tuple(opts.baselines if opts.baselines is not None else ["uniform"]),
    )  # fmt: skip


def run(cfg: Namespace) -> int:
    """Run ``pathattn evaluate wsol``; return the exit code."""
    if cfg.kind != "wsol":
        raise PathattnError(f"unknown evaluation {cfg.kind!r}; use 'pathattn evaluate wsol'")
    opts = cfg.wsol
    volumes = _is_volume_run(opts)
    _check(opts, volumes)
    if volumes:
        from pathattn.evaluate.volume_run import run_volume_wsol

        run_volume_wsol(_volume_job(opts))
    elif opts.scores is not None:
        from pathattn.evaluate.run import run_slide_wsol

        run_slide_wsol(_slide_job(opts))
    else:
        from pathattn.evaluate.images import run_image_wsol

        run_image_wsol(_image_job(opts))
    return 0
