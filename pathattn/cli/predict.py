"""``pathattn predict``: slide predictions and per-patch attention from a trained checkpoint or run.

``--checkpoint`` predicts every slide with one checkpoint; ``--run`` predicts each slide of a cross-validation
run with the checkpoint of the fold that tested it (honest, out-of-fold attention for heatmaps).
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "predict slides with a trained checkpoint (or out of fold with a run) and write the attention of every patch"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``predict`` parser."""
    from pathattn.cli.options import add_model_options

    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    add_model_options(p)
    p.add_argument("--features", type=str, required=True, help="folder of feature files ('pathattn extract' output)")
    p.add_argument("--out", type=str, required=True, help="folder: predictions.csv and attention/{slide_id}.h5")
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="slides to predict (default: every feature file, or every slide of --run)")  # fmt: skip
    subcommands.add_subcommand("predict", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Predict and print where the results are; exit 1 if a slide failed."""
    from pathattn.train.predict import predict

    outcome = predict(cfg.features, cfg.out, cfg.checkpoint, cfg.run, cfg.slide_ids, cfg.device, cfg.checkpoint_format)
    return outcome.report(f"; predictions: {cfg.out}/predictions.csv, attention: {cfg.out}/attention/")
