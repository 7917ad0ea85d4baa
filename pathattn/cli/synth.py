"""``pathattn synth``: generate synthetic data (the embedded demo and test cohorts).

``pathattn synth wsi --out DIR --n-slides N --seed S`` writes H&E-like pyramidal TIFF slides with tumor
GeoJSON ground truth, ``samples.csv`` and ``cohort.json`` (see :mod:`pathattn.synth.wsi`).
"""

from __future__ import annotations

from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from pathattn.errors import PathattnError


def register(subcommands: Any) -> None:
    """Add the ``synth`` command and its ``wsi`` subcommand to the ``pathattn`` parser."""
    summary = "generate synthetic data (the embedded demo/test cohorts)"
    parser = ArgumentParser(description=summary[0].upper() + summary[1:] + ".", exit_on_error=False)
    subcommands.add_subcommand("synth", parser, help=summary)
    kinds = parser.add_subcommands(dest="kind")
    wsi = ArgumentParser(
        description="Generate a deterministic cohort of H&E-like pyramidal TIFF slides with tumor "
        "ground truth (GeoJSON), samples.csv (labels, survival) and cohort.json.",
        exit_on_error=False,
    )
    wsi.add_argument("--config", action=ActionConfigFile)
    wsi.add_argument("--out", type=str, required=True, help="output folder of the cohort")
    wsi.add_argument("--n-slides", type=int, default=12, help="number of slides (about half with tumor)")
    wsi.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort")
    wsi.add_argument("--mpp", type=float, default=0.5, help="level-0 resolution, micrometres per pixel")
    wsi.add_argument("--width", type=int, default=6144, help="level-0 slide width, pixels")
    wsi.add_argument("--height", type=int, default=4608, help="level-0 slide height, pixels")
    wsi.add_argument("--overwrite", action="store_true", help="regenerate slides that already exist")
    kinds.add_subcommand("wsi", wsi, help="whole-slide images with tumor regions, labels and survival")


def _check(opts: Any) -> None:
    """Raise a one-line :class:`PathattnError` for invalid options."""
    if opts.n_slides < 1:
        raise PathattnError(f"--n-slides must be at least 1 (got {opts.n_slides}); pass e.g. --n-slides 12")
    for name in ("width", "height"):
        if getattr(opts, name) < 64:
            default = 6144 if name == "width" else 4608
            raise PathattnError(
                f"--{name} must be at least 64 pixels (got {getattr(opts, name)}); the default is {default}"
            )
    if not opts.mpp > 0:
        raise PathattnError(f"--mpp must be positive (got {opts.mpp}); pass e.g. --mpp 0.5")


def run(cfg: Any) -> int:
    """Run ``pathattn synth <kind>`` with its parsed namespace; return the exit code."""
    if cfg.kind != "wsi":
        raise PathattnError(f"unknown synth kind {cfg.kind!r}; use 'pathattn synth wsi'")
    opts = cfg.wsi
    _check(opts)
    from pathattn.synth.cohort import run_synth_wsi

    return run_synth_wsi(opts.out, opts.n_slides, opts.seed, opts.overwrite, opts.width, opts.height, opts.mpp)
