"""``pathattn predict``: slide predictions and per-patch attention from a trained checkpoint."""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "predict slides with a trained checkpoint and write the attention of every patch"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``predict`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--checkpoint", type=str, required=True, help="a .ckpt of 'pathattn train' (RUN/fold_k/checkpoints)")
    p.add_argument("--features", type=str, required=True, help="folder of feature files ('pathattn extract' output)")
    p.add_argument("--out", type=str, required=True, help="folder: predictions.csv and attention/{slide_id}.h5")
    p.add_argument("--slides", type=str | None, default=None, nargs="+", help="slide ids to predict (default: all)")
    p.add_argument("--device", type=str, default="cpu", help="cpu or cuda[:i]")
    subcommands.add_subcommand("predict", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Predict and print where the results are."""
    import sys

    from pathattn.extract.run import resolve_device
    from pathattn.train.predict import predict

    device = str(resolve_device(cfg.device))
    rows = predict(cfg.checkpoint, cfg.features, cfg.out, cfg.slides, device)
    print(f"predict: {len(rows)} slides; predictions: {cfg.out}/predictions.csv, attention: {cfg.out}/attention/",
          file=sys.stderr)  # fmt: skip
    return 0
