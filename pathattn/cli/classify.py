"""``pathattn classify fit | predict``: image and slice classifiers of the train stage (docs/classify.md).

``fit`` cross-validates a registered image model (``timm_classifier``: ResNet-18 by default, the PET/CT slice
classifier; ``medusa``; ``medusa_isolated``) on the slices of a volume tiling or on an image sheet; every field
of :class:`pathattn.train.image.config.ClassifyConfig` is a dashed option and a YAML key. ``predict`` applies
one checkpoint to images or slices, cut as at training unless told otherwise.
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "train image/slice classifiers (ResNet-18, MEDUSA) with patient- or slice-level splits, and predict"
FIT_HELP = "cross-validate an image classifier on volume slices (--tiles) or an image sheet (--images)"
PREDICT_HELP = "predict images or slices with a checkpoint of 'pathattn classify fit'"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add ``classify`` with its ``fit`` and ``predict`` subcommands."""
    from pathattn.cli.options import add_dataclass_options
    from pathattn.train.image.config import ClassifyConfig

    parser = ArgumentParser(description=HELP[0].upper() + HELP[1:] + ".", exit_on_error=False)
    subcommands.add_subcommand("classify", parser, help=HELP)
    actions = parser.add_subcommands(dest="action")
    fit = ArgumentParser(description=FIT_HELP, exit_on_error=False)
    fit.add_argument("--config", action=ActionConfigFile, help="YAML files with any of these options (see configs/)")
    add_dataclass_options(fit, ClassifyConfig)
    actions.add_subcommand("fit", fit, help=FIT_HELP)
    actions.add_subcommand("predict", _predict_parser(), help=PREDICT_HELP)


def add_image_inputs(p: ArgumentParser, checkpoint_required: bool = True) -> None:
    """The options that name a trained classifier and the images it is applied to (``predict``, ``cams``)."""
    p.add_argument("--checkpoint", type=str | None, required=checkpoint_required, default=None,
                   help="a checkpoint of 'pathattn classify fit' (RUN/fold_k/checkpoints/best.ckpt)")  # fmt: skip
    p.add_argument("--tiles", type=str | None, default=None, help="a slice tiling of volumes ('pathattn tile')")
    p.add_argument("--images", type=str | None, default=None, help="instead of --tiles: an image sheet (path, label)")
    p.add_argument("--samples", type=str | None, default=None,
                   help="with --tiles: the volume sample sheet (volume_id, patient_id, centre)")  # fmt: skip
    p.add_argument("--channels", type=list[str] | None, default=None,
                   help="with --tiles: the modalities the network sees (default: as at training)")  # fmt: skip
    p.add_argument("--image-size", type=int | None, default=None, help="image side in pixels (default: as at training)")
    p.add_argument("--device", type=str, default="cpu", help="where the model runs: cpu, cuda[:i] or auto")
    p.add_argument("--workers", type=int, default=0, help="processes reading volumes")


def _predict_parser() -> ArgumentParser:
    p = ArgumentParser(description=PREDICT_HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    add_image_inputs(p)
    p.add_argument("--out", type=str, required=True, help="folder: predictions.csv (and metrics.json when labelled)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability of the positive class that calls it")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (of patients) of the intervals")
    return p


def run(cfg: Namespace) -> int:
    """Run ``fit`` or ``predict``."""
    return _fit(cfg.fit) if cfg.action == "fit" else _predict(cfg.predict)


def _fit(cfg: Namespace) -> int:
    import sys

    from pathattn.train.image.config import ClassifyConfig
    from pathattn.train.image.fit import fit_cv

    config = ClassifyConfig(**{k: v for k, v in cfg.as_dict().items() if k != "config"})
    result = fit_cv(config)
    if result is None:  # another process of a DDP run
        return 0
    stat = result["summary"].get("auroc", {})
    print(f"classify fit: {config.model}, {len(result['folds'])} folds ({config.split} split), auroc "
          f"{stat.get('mean', float('nan')):.3f} ± {stat.get('std', float('nan')):.3f}; metrics: "
          f"{config.out / 'metrics.json'}", file=sys.stderr)  # fmt: skip
    return 0


def _predict(cfg: Namespace) -> int:
    import sys
    from pathlib import Path

    from pathattn.train.image.predict import predict_images

    system, images = load_classifier_inputs(cfg)
    metrics = predict_images(system, images, Path(cfg.out), cfg.threshold, cfg.n_boot)
    summary = f", auroc {metrics['auroc']:.3f}" if metrics else ""
    print(f"classify predict: {len(images)} images{summary}; predictions: {cfg.out}/predictions.csv", file=sys.stderr)
    return 0


def load_classifier_inputs(cfg: Namespace, with_masks: bool = False):  # noqa: ANN201 - (classifier, ImageSet)
    """The checkpoint's system and the images named by :func:`add_image_inputs`, cut as at training by default."""
    from pathlib import Path

    from pathattn.devices import resolve_device
    from pathattn.models.trained_image import load_image_classifier
    from pathattn.volumes.slice_set import SliceSetOptions, read_images

    system = load_image_classifier(cfg.checkpoint, resolve_device(cfg.device))
    trained = dict(system.inputs)
    size = cfg.image_size or int(trained.get("image_size", 224))
    channels = cfg.channels or trained.get("channels")
    options = SliceSetOptions((size, size), tuple(channels) if channels else None,
                              float(trained.get("min_lesion_fraction", 0.0)), with_masks)  # fmt: skip
    path = lambda value: Path(value) if value else None  # noqa: E731
    images = read_images(path(cfg.tiles), path(cfg.images), options, path(cfg.samples), cfg.workers)
    return system, images
