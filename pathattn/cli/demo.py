"""``pathattn demo``: generate the synthetic cohort and run the whole Snakemake workflow on it.

The work is :func:`pathattn.workflow.demo.run_demo`; this module only parses the options.
"""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

HELP = "generate the synthetic cohort and run the whole workflow on it, with a report (what 'make demo' runs)"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``demo`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--out", type=str, default="demo_out",
                   help="working folder: cohort/, results/<study>/ and Snakemake's state")  # fmt: skip
    p.add_argument("--n-slides", type=int, default=40, help="slides in the synthetic cohort")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort")
    p.add_argument("--width", type=int, default=6144, help="level-0 width of the synthetic slides, pixels")
    p.add_argument("--height", type=int, default=4608, help="level-0 height of the synthetic slides, pixels")
    p.add_argument("--cores", type=int | None, default=None, help="cores for Snakemake (default: all)")
    p.add_argument("--configfile", type=str | None, default=None,
                   help="study config (default: the repository's workflows/demo/config.yaml)")  # fmt: skip
    subcommands.add_subcommand("demo", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Run the demo with the parsed options; exit 1 if the workflow failed."""
    from pathattn.workflow.demo import DemoCohort, run_demo

    cohort = DemoCohort(cfg.n_slides, cfg.seed, cfg.width, cfg.height)
    return run_demo(cfg.out, cohort, cfg.cores, cfg.configfile)
