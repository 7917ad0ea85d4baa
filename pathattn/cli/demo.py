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
    p.add_argument("--workers", type=int, default=2, help="slides processed in parallel")
    subcommands.add_subcommand("demo", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Synthesize the cohort (resumable), tile it, and print where the results are."""
    from pathattn.cli.main import main

    out = Path(cfg.out)
    cohort = out / "cohort"
    steps = [
        ["synth", "wsi", "--out", str(cohort), "--n-slides", str(cfg.n_slides), "--seed", str(cfg.seed)],
        [
            "tile",
            "--samples",
            str(cohort / "samples.csv"),
            "--out",
            str(out / "tile"),
            "--annotations",
            str(cohort / "annotations"),
            "--workers",
            str(cfg.workers),
        ],  # fmt: skip
    ]
    for argv in steps:
        print(f"$ pathattn {' '.join(argv)}", file=sys.stderr)
        code = main(argv)
        if code:
            return code
    print(f"demo finished: QC images in {out / 'tile' / 'qc'}, manifest {out / 'tile' / 'manifest.csv'}")
    return 0
