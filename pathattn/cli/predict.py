"""``pathattn predict``: slide predictions and per-patch attention from a trained checkpoint or run.

``--checkpoint`` predicts every slide with one checkpoint; ``--run`` predicts each slide of a cross-validation
run with the checkpoint of the fold that tested it (honest, out-of-fold attention for heatmaps).
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "predict slides with a trained checkpoint (or out of fold with a run) and write the attention of every patch"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``predict`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--checkpoint", type=str | None, default=None,
                   help="a .ckpt of 'pathattn train' (RUN/fold_k/checkpoints) for every slide")  # fmt: skip
    p.add_argument("--run", type=str | None, default=None,
                   help="a 'pathattn train' run folder: each of its slides with its out-of-fold model")  # fmt: skip
    p.add_argument("--features", type=str, required=True, help="folder of feature files ('pathattn extract' output)")
    p.add_argument("--out", type=str, required=True, help="folder: predictions.csv and attention/{slide_id}.h5")
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="slides to predict (default: every feature file, or every slide of --run)")  # fmt: skip
    p.add_argument("--device", type=str, default="cpu", help="cpu, cuda[:i] or auto (CUDA when available)")
    subcommands.add_subcommand("predict", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Predict and print where the results are."""
    import sys

    from pathattn.errors import PathattnError
    from pathattn.extract.run import resolve_device
    from pathattn.train.predict import predict, predict_out_of_fold

    if (cfg.checkpoint is None) == (cfg.run is None):
        raise PathattnError(
            "give either --checkpoint (one model for every slide) or --run (out of fold), not both or neither"
        )
    device = str(resolve_device(cfg.device))
    if cfg.run is not None:
        rows = predict_out_of_fold(cfg.run, cfg.features, cfg.out, cfg.slide_ids, device)
    else:
        rows = predict(cfg.checkpoint, cfg.features, cfg.out, cfg.slide_ids, device)
    print(f"predict: {len(rows)} slides; predictions: {cfg.out}/predictions.csv, attention: {cfg.out}/attention/",
          file=sys.stderr)  # fmt: skip
    return 0
