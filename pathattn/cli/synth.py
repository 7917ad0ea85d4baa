"""``pathattn synth``: generate synthetic data (the embedded demo and test cohorts).

``pathattn synth wsi --out DIR --n-slides N --seed S`` writes H&E-like pyramidal TIFF slides with tumor
GeoJSON ground truth, ``samples.csv`` and ``cohort.json`` (see :mod:`pathattn.synth.wsi`).
``pathattn synth volume --out DIR --n-patients N --seed S`` writes CT / PET / MR volumes with lesion labels,
``samples.csv`` and ``cohort.json`` (see :mod:`pathattn.synth.volume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from pathattn.errors import PathattnError


def register(subcommands: Any) -> None:
    """Add the ``synth`` command and its ``wsi`` and ``volume`` subcommands to the ``pathattn`` parser."""
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
    kinds.add_subcommand("volume", _volume_parser(), help="CT / PET / MR volumes with lesion labels and survival")


def _volume_parser() -> ArgumentParser:
    """The options of ``pathattn synth volume``."""
    volume = ArgumentParser(
        description="Generate a deterministic cohort of CT-like volumes (NIfTI in LPS, and DICOM series for some "
        "patients) with optional aligned PET and MR-like contrast, lesion label volumes, two centres, and "
        "samples.csv (labels, survival) and cohort.json.",
        exit_on_error=False,
    )
    volume.add_argument("--config", action=ActionConfigFile)
    volume.add_argument("--out", type=str, required=True, help="output folder of the cohort")
    volume.add_argument("--n-patients", type=int, default=24, help="number of patients (about half with lesions)")
    volume.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort")
    volume.add_argument("--shape", type=list[int], default=[96, 96, 40],
                        help="voxels I, J, K of every CT volume, e.g. [96,96,40]; in-plane spacing = the "
                             "centre's field of view (345.6 or 460.8 mm) / I, slices 3 or 5 mm")  # fmt: skip
    volume.add_argument("--modalities", type=str, default="ct,pet",
                        help="comma-separated, some of ct, pet, mr (at least ct or mr)")  # fmt: skip
    volume.add_argument("--dicom-fraction", type=float, default=0.25,
                        help="fraction of patients whose CT (and PET) are also written as DICOM series")  # fmt: skip
    volume.add_argument("--overwrite", action="store_true", help="regenerate volumes that already exist")
    return volume


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
    if Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise PathattnError(f"--out {opts.out} is a file, not a folder; pass a folder (it is created if missing)")
    from pathattn.synth.cohort import check_slide_memory

    check_slide_memory(opts.width, opts.height)


def _check_volume(opts: Any) -> tuple[int, int, int]:
    """Raise a one-line :class:`PathattnError` for invalid options of ``synth volume``; return the shape."""
    if opts.n_patients < 1:
        raise PathattnError(f"--n-patients must be at least 1 (got {opts.n_patients}); pass e.g. --n-patients 24")
    shape = opts.shape
    if len(shape) != 3 or min(shape[:2]) < 16 or shape[2] < 4:
        raise PathattnError(
            f"--shape must be three integers I, J, K with I, J >= 16 and K >= 4 (got {list(shape)}); "
            "pass e.g. --shape [96,96,40]"
        )
    if not 0 <= opts.dicom_fraction <= 1:
        raise PathattnError(f"--dicom-fraction must be between 0 and 1 (got {opts.dicom_fraction}); e.g. 0.25")
    if Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise PathattnError(f"--out {opts.out} is a file, not a folder; pass a folder (it is created if missing)")
    from pathattn.synth.volume import check_volume_memory

    check_volume_memory(tuple(shape))
    return tuple(shape)  # type: ignore[return-value]


def run(cfg: Any) -> int:
    """Run ``pathattn synth <kind>`` with its parsed namespace; return the exit code."""
    if cfg.kind == "volume":
        opts = cfg.volume
        from pathattn.synth.volume import parse_modalities, run_synth_volume

        modalities = parse_modalities(opts.modalities)
        shape = _check_volume(opts)
        return run_synth_volume(opts.out, opts.n_patients, opts.seed, opts.overwrite, shape, modalities,
                                opts.dicom_fraction)  # fmt: skip
    if cfg.kind != "wsi":
        raise PathattnError(f"unknown synth kind {cfg.kind!r}; use 'pathattn synth wsi' or 'pathattn synth volume'")
    opts = cfg.wsi
    _check(opts)
    from pathattn.synth.cohort import run_synth_wsi

    return run_synth_wsi(opts.out, opts.n_slides, opts.seed, opts.overwrite, opts.width, opts.height, opts.mpp)
