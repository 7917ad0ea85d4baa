"""``pathattn demo``: generate the synthetic cohort and run the pipeline's stages on it."""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

HELP = "run the pipeline on the embedded synthetic cohort (what 'make demo' runs)"


def register(subcommands) -> None:  # noqa: ANN001
    """Add the ``demo`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--out", type=str, default="demo_out", help="folder for the cohort and every stage's outputs")
    p.add_argument("--n-slides", type=int, default=12, help="slides in the synthetic cohort")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort")
    p.add_argument("--workers", type=int, default=2, help="slides tiled in parallel")
    p.add_argument("--encoder", type=str, default="resnet50_trunc",
                   help="feature encoder (random init: no weights are downloaded)")  # fmt: skip
    subcommands.add_subcommand("demo", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Synthesize the cohort (resumable), tile it, extract features, and print where the results are."""
    from pathattn.cli.main import main

    out = Path(cfg.out)
    cohort = out / "cohort"
    tiles, features = out / "tile", out / "extract"
    # fmt: off
    steps = [
        ["synth", "wsi", "--out", str(cohort), "--n-slides", str(cfg.n_slides), "--seed", str(cfg.seed)],
        ["tile", "--samples", str(cohort / "samples.csv"), "--out", str(tiles),
         "--annotations", str(cohort / "annotations"), "--workers", str(cfg.workers)],
        ["extract", "--coords", str(tiles), "--out", str(features), "--encoder", cfg.encoder],
    ]
    # fmt: on
    for argv in steps:
        print(f"$ pathattn {' '.join(argv)}", file=sys.stderr)
        code = main(argv)
        if code:
            return code
    print(f"demo finished: QC images in {tiles / 'qc'}, features in {features / 'h5_files'}")
    return 0
