"""``pathattn cams``: Grad-CAM, Grad-CAM++, Eigen-CAM, Score-CAM and a model's own attention maps for images or slices.

The classifier is a checkpoint of ``pathattn classify fit`` (``--checkpoint``), or fold k of such a run
(``--run RUN --fold K``: its checkpoint and its held-out test images, the honest choice for localization).
The maps are written with the masks, boxes, split and classification files that ``pathattn evaluate wsol --maps``
reads (:mod:`pathattn.evaluate.cam_maps`).
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "class activation maps (Grad-CAM, Grad-CAM++, Eigen-CAM, Score-CAM) and MEDUSA's maps, ready for WSOL"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``cams`` parser."""
    from pathattn.cli.classify import add_image_inputs
    from pathattn.evaluate.cam_maps import METHODS

    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    add_image_inputs(p, checkpoint_required=False)
    p.add_argument("--run", type=str | None, default=None, help="instead of --checkpoint: a 'classify fit' run")
    p.add_argument("--fold", type=int | None, default=None, help="with --run: the fold (its model and test images)")
    p.add_argument("--out", type=str, required=True, help="output folder: maps/{method}/, masks/, boxes.csv, split.csv")
    p.add_argument("--methods", type=list[str], default=[],
                   help=f"some of {', '.join(METHODS)} (default: the CAMs, and attention if the model has "
                        "maps)")  # fmt: skip
    p.add_argument("--all-images", action="store_true",
                   help="explain every image (default: the positive images with a lesion)")  # fmt: skip
    p.add_argument("--calibration-fraction", type=float, default=0.2,
                   help="share of the patients whose images calibrate the WSOL thresholds")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw")
    p.add_argument("--batch-size", type=int, default=16, help="images per pass")
    p.add_argument("--cam-stage", type=int, default=-1,
                   help="feature stage the CAMs explain: -1 the last (layer4 of a ResNet), -2 the one before "
                        "(layer3, twice the resolution), ...")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the maps already in --out")
    subcommands.add_subcommand("cams", p, help=HELP)


def _resolve_run(cfg: Namespace) -> list[str] | None:
    """With ``--run``: set ``cfg.checkpoint`` to the fold's model and return the fold's test images."""
    from pathlib import Path

    from pathattn.fitting.splits import load_splits

    if (cfg.run is None) == (cfg.checkpoint is None):
        raise PathattnError("pass either --checkpoint or --run with --fold")
    if cfg.run is None:
        return None
    if cfg.fold is None:
        raise PathattnError("--run needs --fold K: the fold whose model and held-out images are explained")
    run = Path(cfg.run)
    splits = load_splits(run / "splits.json", item="image")
    checkpoint = run / f"fold_{cfg.fold}" / "checkpoints" / "best.ckpt"
    if not 0 <= cfg.fold < len(splits) or not checkpoint.is_file():
        raise PathattnError(f"--fold {cfg.fold}: {run} has no trained fold {cfg.fold} ({checkpoint} is missing)")
    cfg.checkpoint = str(checkpoint)
    return list(splits[cfg.fold].test)


def run(cfg: Namespace) -> int:
    """Write the maps and print where they are."""
    import sys
    from pathlib import Path

    from pathattn.cli.classify import load_classifier_inputs
    from pathattn.evaluate.cam_maps import CamJob, write_cams

    test_ids = _resolve_run(cfg)
    job = CamJob(Path(cfg.out), tuple(cfg.methods), cfg.all_images, cfg.calibration_fraction, cfg.seed, cfg.batch_size,
                 cfg.cam_stage, cfg.overwrite)  # fmt: skip
    model, images = load_classifier_inputs(cfg, with_masks=True)
    if test_ids is not None:
        images = images.select(test_ids)
    summary = write_cams(model, images, job)
    print(f"cams: {', '.join(summary['methods'])} for {summary['n_images']} images; maps: {cfg.out}/maps/",
          file=sys.stderr)  # fmt: skip
    return 0
