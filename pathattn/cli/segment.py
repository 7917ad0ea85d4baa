"""``pathattn segment fit | predict | evaluate``: attention-gated segmentation of volumes (docs/segment.md).

``fit`` trains a registered segmentation network (``attention_unet``, ``unet``, ``monai_attention_unet``) on the
labelled volumes of a sample sheet with a patient-level split and segments the held-out patients; every field of
:class:`pathattn.segment.config.SegmentConfig` is a dashed option and a YAML key. ``predict`` writes masks and
gate maps on each input's own grid; ``evaluate`` scores them against the label volumes.
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "attention-gated segmentation of volumes (Attention U-Net): fit, predict masks and gate maps, evaluate"
FIT_HELP = "train a segmentation network on labelled volumes (patient-level split) and segment the held-out patients"
PREDICT_HELP = "masks and gate maps of volumes with a checkpoint of 'pathattn segment fit', on each input's grid"
EVALUATE_HELP = "Dice, HD95, NSD and lesion detection of predicted masks, PxAP of the gate maps, against label volumes"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add ``segment`` with its ``fit``, ``predict`` and ``evaluate`` subcommands."""
    from pathattn.cli.options import add_dataclass_options
    from pathattn.segment.config import SegmentConfig

    parser = ArgumentParser(description=HELP[0].upper() + HELP[1:] + ".", exit_on_error=False)
    subcommands.add_subcommand("segment", parser, help=HELP)
    actions = parser.add_subcommands(dest="action")
    fit = ArgumentParser(description=FIT_HELP, exit_on_error=False)
    fit.add_argument("--config", action=ActionConfigFile, help="YAML files with any of these options (see configs/)")
    add_dataclass_options(fit, SegmentConfig)
    actions.add_subcommand("fit", fit, help=FIT_HELP)
    actions.add_subcommand("predict", _predict_parser(), help=PREDICT_HELP)
    actions.add_subcommand("evaluate", _evaluate_parser(), help=EVALUATE_HELP)


def _predict_parser() -> ArgumentParser:
    from jsonargparse import ActionYesNo

    from pathattn.cli.options import NO_PREFIX

    p = ArgumentParser(description=PREDICT_HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--checkpoint", type=str, required=True, help="RUN/fold_k/checkpoints/best.ckpt of 'segment fit'")
    p.add_argument("--samples", type=str, required=True, help="volume sample sheet (label_path optional: QC outlines)")
    p.add_argument("--volume-ids", type=list[str] | None, default=None, help="only these volumes of the sheet")
    p.add_argument("--out", type=str, required=True, help="folder: masks/, attention/, qc/, predictions.csv")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap, in [0, 1)")
    p.add_argument("--blend", type=str, default="gaussian", choices=["gaussian", "constant"],
                   help="weighting of overlapping windows")  # fmt: skip
    p.add_argument("--tta", action="store_true", help="average the predictions of the volume flipped along every axis")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument("--attention", action=ActionYesNo(no_prefix=NO_PREFIX), default=True, help="write the gate maps")
    p.add_argument("--qc", action=ActionYesNo(no_prefix=NO_PREFIX), default=True, help="write the QC montages")
    p.add_argument("--device", type=str, default="cpu", help="where the model runs: cpu, cuda[:i] or auto")
    return p


def _evaluate_parser() -> ArgumentParser:
    p = ArgumentParser(description=EVALUATE_HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--predictions", type=str, required=True, help="the --out of 'pathattn segment predict'")
    p.add_argument("--samples", type=str, required=True, help="the volume sample sheet with label_path")
    p.add_argument("--out", type=str | None, default=None, help="folder of metrics.json, cases.csv, lesions.csv "
                   "(default: --predictions)")  # fmt: skip
    p.add_argument("--n-classes", type=int | None, default=None,
                   help="classes, background included (default: those of the predictions)")  # fmt: skip
    p.add_argument("--nsd-tolerance", type=float, default=2.0, help="normalised surface Dice tolerance in mm")
    p.add_argument("--size-bins", type=list[float], default=[1.0, 5.0, 20.0],
                   help="lesion volume edges in mL of the recall by size")  # fmt: skip
    return p


def run(cfg: Namespace) -> int:
    """Run ``fit``, ``predict`` or ``evaluate``."""
    return {"fit": _fit, "predict": _predict, "evaluate": _evaluate}[cfg.action](cfg[cfg.action])


def _fit(cfg: Namespace) -> int:
    import sys

    from pathattn.segment.config import SegmentConfig
    from pathattn.segment.fit import fit_run

    config = SegmentConfig(**{k: v for k, v in cfg.as_dict().items() if k != "config"})
    result = fit_run(config)
    if result is None:  # another process of a DDP run
        return 0
    lesion = result["summary"].get("1", {})
    print(f"segment fit: {config.model}, folds {config.folds}: lesion Dice {_number(lesion.get('dice_mean_positive'))} "
          f"on held-out volumes with lesions, recall {_number(lesion.get('lesion_recall'))}; metrics: "
          f"{config.out / 'metrics.json'}", file=sys.stderr)  # fmt: skip
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _predict(cfg: Namespace) -> int:
    import sys
    from pathlib import Path

    from pathattn.devices import resolve_device
    from pathattn.errors import PathattnError
    from pathattn.io.volume_samples import select_volumes
    from pathattn.models.trained_segmentation import load_segmenter
    from pathattn.segment.predict import PredictOptions, predict_cases

    if not 0 <= cfg.overlap < 1 or cfg.batch_size < 1:
        raise PathattnError(f"--overlap must lie in [0, 1) and --batch-size be at least 1; got {cfg.overlap}, "
                            f"{cfg.batch_size}")  # fmt: skip
    model = load_segmenter(cfg.checkpoint, resolve_device(cfg.device))
    entries = select_volumes(None, cfg.samples, cfg.volume_ids)
    options = PredictOptions(cfg.overlap, cfg.blend, cfg.batch_size, cfg.tta, cfg.attention, cfg.qc)
    rows, errors = predict_cases(model, entries, Path(cfg.out), options, str(Path(cfg.checkpoint).resolve()))
    print(f"segment predict: {len(rows)} volumes segmented, {len(errors)} failed; predictions: "
          f"{cfg.out}/predictions.csv", file=sys.stderr)  # fmt: skip
    for error in errors:
        print(f"  {error['volume_id']}: {error['error']}", file=sys.stderr)
    return 1 if errors else 0


def _evaluate(cfg: Namespace) -> int:
    import sys
    from pathlib import Path

    from pathattn.io.volume_samples import read_volume_sheet
    from pathattn.segment.evaluate import evaluate_predictions, predicted_classes

    folder = Path(cfg.predictions)
    n_classes = cfg.n_classes or predicted_classes(folder)
    out = Path(cfg.out) if cfg.out else None
    result = evaluate_predictions(folder, read_volume_sheet(cfg.samples), n_classes, out, cfg.nsd_tolerance,
                                  cfg.size_bins)  # fmt: skip
    lesion = result["classes"].get("1", {})
    print(f"segment evaluate: {result['cases']} volumes, lesion Dice {_number(lesion.get('dice_mean_positive'))} "
          f"(volumes with lesions), HD95 {_number(lesion.get('hd95_mean'))} mm, recall "
          f"{_number(lesion.get('lesion_recall'))}; metrics: {(out or folder) / 'metrics.json'}",
          file=sys.stderr)  # fmt: skip
    return 0
