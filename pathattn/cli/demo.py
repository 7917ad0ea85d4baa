"""``pathattn demo``: generate the synthetic cohorts and run the whole Snakemake workflow on each (slides, volumes).

The work is :func:`pathattn.workflow.demo.run_demo`; this module only parses the options.
"""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

HELP = (
    "generate synthetic slide and PET/CT cohorts and run the whole workflow on each, with a report "
    "(what 'make demo' runs)"
)


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``demo`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--out", type=str, default="demo_out",
                   help="working folder: cohort/, volume_cohort/, results/<study>/ and Snakemake's state")  # fmt: skip
    p.add_argument("--study", type=str, default="all", choices=["slides", "volumes", "volume_segmentation", "all"],
                   help="the studies to run: slides, volumes (PET/CT), or both (all), slides first; "
                        "volume_segmentation (Attention U-Net and U-Net on the PET/CT cohort) on its own")  # fmt: skip
    p.add_argument("--n-slides", type=int, default=40, help="slides in the synthetic cohort")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohorts")
    p.add_argument("--width", type=int, default=6144, help="level-0 width of the synthetic slides, pixels")
    p.add_argument("--height", type=int, default=4608, help="level-0 height of the synthetic slides, pixels")
    p.add_argument("--n-patients", type=int, default=20, help="patients in the synthetic PET/CT cohort")
    p.add_argument("--volume-shape", type=list[int], default=[96, 96, 40],
                   help="voxels I, J, K of every synthetic CT volume, e.g. [96,96,40]")  # fmt: skip
    p.add_argument("--cores", type=int | None, default=None, help="cores for Snakemake (default: all)")
    p.add_argument("--configfile", type=str | None, default=None,
                   help="study config of the slides (default: workflows/demo/config.yaml)")  # fmt: skip
    p.add_argument("--volume-configfile", type=str | None, default=None,
                   help="study config of the volumes (default: workflows/demo_volumes/config.yaml)")  # fmt: skip
    p.add_argument("--segmentation-configfile", type=str | None, default=None,
                   help="study config of volume_segmentation (default: "
                        "workflows/demo_segmentation/config.yaml)")  # fmt: skip
    subcommands.add_subcommand("demo", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Run the demo with the parsed options; exit 1 if a workflow failed."""
    from pathattn.errors import PathattnError
    from pathattn.workflow.demo import DemoCohort, VolumeCohort, demo_studies, run_demo

    if len(cfg.volume_shape) != 3:
        raise PathattnError(f"--volume-shape must be three integers I, J, K (got {list(cfg.volume_shape)}); "
                            "pass e.g. --volume-shape [96,96,40]")  # fmt: skip
    slides = DemoCohort(cfg.n_slides, cfg.seed, cfg.width, cfg.height)
    volumes = VolumeCohort(cfg.n_patients, cfg.seed, tuple(cfg.volume_shape))
    files = {"slides": cfg.configfile, "volumes": cfg.volume_configfile,
             "volume_segmentation": cfg.segmentation_configfile}  # fmt: skip
    return run_demo(cfg.out, demo_studies(cfg.study, slides, volumes, files), cfg.cores)
