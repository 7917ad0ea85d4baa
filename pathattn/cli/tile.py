"""``pathattn tile``: whole-slide images or volumes into patch grids (coordinates, tissue/foreground, QC, manifest).

Volumes are recognised from the inputs: a sample sheet with ``<modality>_path`` columns (``ct_path``,
``pet_path``) or ``volume_id``, or ``--slides`` that are all volume files (.nii, .nii.gz, .nrrd, .mha, .mhd)
or DICOM folders (:mod:`pathattn.io.volume_samples`). Slide options apply to slides, volume options to volumes.
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "tile whole-slide images into patch grids, or CT/MRI/PET volumes into slices or 3-D patches, in physical units"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's private subcommands action
    """Add the ``tile`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options (see configs/tile/)")
    p.add_argument("--slides", type=str, default=None, nargs="+", help="slide files and/or folders of slides")
    p.add_argument("--samples", type=str | None, default=None, help="sample sheet (CSV/TSV) with a slide_path column")
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="tile only these slides of --slides/--samples (one job per slide in a workflow)")  # fmt: skip
    p.add_argument("--out", type=str, required=True, help="run folder: coords/, tissue/, qc/, manifest.csv")
    p.add_argument("--mpp", type=float, default=0.5, help="target resolution of the patches, µm/px")
    p.add_argument("--patch-size", type=int, default=256, help="patch side in pixels at --mpp")
    p.add_argument("--overlap", type=int, default=0, help="overlap of neighbouring patches, pixels at --mpp")
    p.add_argument("--min-tissue", type=float, default=0.25, help="minimum tissue fraction to keep a patch")
    p.add_argument("--slide-mpp", type=float | None, default=None,
                   help="level-0 µm/px of every slide, overriding its metadata (a sheet's mpp wins)")  # fmt: skip
    p.add_argument("--tissue-geojson", type=str | None, default=None,
                   help="folder of {slide_id}.geojson tissue masks that replace automatic detection")  # fmt: skip
    p.add_argument("--annotations", type=str | None, default=None,
                   help="folder of {slide_id}.geojson annotations; each patch gets its fraction per class")  # fmt: skip
    p.add_argument("--seg-mpp", type=float, default=8.0, help="µm/px of the image tissue detection runs on")
    p.add_argument("--tissue-method", type=str, default="otsu", choices=["otsu", "fixed"],
                   help="saturation threshold: per-slide Otsu (floored at --tissue-threshold) or fixed")  # fmt: skip
    p.add_argument("--tissue-threshold", type=int, default=8, help="saturation threshold 0-255 (Otsu's floor)")
    p.add_argument("--median-blur", type=int, default=7, help="median filter size (odd), pixels at --seg-mpp")
    p.add_argument("--close", type=int, default=4, help="closing kernel size, pixels at --seg-mpp (0: off)")
    p.add_argument("--min-tissue-area", type=float, default=0.05, help="drop tissue fragments smaller than this, mm²")
    p.add_argument("--min-hole-area", type=float, default=0.01, help="fill holes smaller than this, mm²")
    _volume_options(p)
    p.add_argument("--workers", type=int, default=1, help="slides tiled in parallel")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are already finished")
    p.add_argument("--allow-empty", action="store_true",
                   help="exit 0 when a slide has no tissue (its empty coordinates file is still written)")  # fmt: skip
    subcommands.add_subcommand("tile", p, help=HELP)


def _volume_options(p: ArgumentParser) -> None:
    """The options that apply to volumes (docs/volumes.md)."""
    p.add_argument("--modality", type=str, default="CT",
                   help="volumes: modality of --slides volume files (a sheet names it per column)")  # fmt: skip
    p.add_argument("--spacing", type=float | None, default=None, nargs=3,
                   help="volumes: target mm along i, j, k of the RAS grid (default: keep the volume's)")  # fmt: skip
    p.add_argument("--slice-thickness", type=float | None, default=None,
                   help="volumes: target mm along the slice axis only (keeps the in-plane spacing)")  # fmt: skip
    p.add_argument("--volume-mode", type=str, default="slices", choices=["slices", "patches"],
                   help="volumes: 2-D slices along --axis, or a grid of 3-D patches")  # fmt: skip
    p.add_argument("--axis", type=str, default="axial", choices=["axial", "coronal", "sagittal"],
                   help="volumes: the slice axis")  # fmt: skip
    p.add_argument("--context-slices", type=int, default=0,
                   help="volumes: 2.5-D, neighbouring slices on each side fed to the encoder as channels")  # fmt: skip
    p.add_argument("--channels", type=str, default=[], nargs="+",
                   help="volumes: the modalities the encoder sees, in order, e.g. PET (default: all)")  # fmt: skip
    p.add_argument("--patch-size-mm", type=float, default=32.0, help="volumes: side of a 3-D patch, mm")
    p.add_argument("--overlap-mm", type=float, default=0.0, help="volumes: overlap of neighbouring 3-D patches, mm")
    p.add_argument("--min-foreground", type=float, default=0.05,
                   help="volumes: minimum foreground fraction of a slice or patch to keep it")  # fmt: skip
    p.add_argument("--preset", type=str, default=None, nargs="+",
                   help="volumes: intensity preset per channel, one for all, or MODALITY=preset")  # fmt: skip
    p.add_argument("--ct-threshold", type=float, default=-500.0, help="volumes: HU above which CT voxels are body")
    p.add_argument("--label-names", type=str, default=["lesion"], nargs="+",
                   help="volumes: names of label values 1, 2, ... of the label volumes")  # fmt: skip


def _volume_job(cfg: Namespace):  # noqa: ANN202 - VolumeTileJob, imported lazily
    from pathattn.tile.volume import VolumeTileJob
    from pathattn.tile.volume_grid import AXES, VolumeGridParams
    from pathattn.volumes.prepare import PrepareParams

    spacing = list(cfg.spacing) if cfg.spacing else [None, None, None]
    if cfg.slice_thickness is not None:
        spacing[AXES[cfg.axis]] = cfg.slice_thickness
    grid = VolumeGridParams(cfg.volume_mode, cfg.axis, cfg.context_slices, cfg.patch_size_mm, cfg.overlap_mm,
                            cfg.min_foreground, tuple(cfg.channels or ()))  # fmt: skip
    prepare = PrepareParams(tuple(spacing), tuple(cfg.preset or ()), cfg.ct_threshold)
    return VolumeTileJob(Path(cfg.out), grid, prepare, tuple(cfg.label_names), cfg.overwrite)


def _job(cfg: Namespace):  # noqa: ANN202 - TileJob, imported lazily
    from pathattn.tile.params import GridParams, TileParams, TissueParams
    from pathattn.tile.run import TileJob

    if cfg.slide_mpp is not None and not cfg.slide_mpp > 0:
        raise PathattnError("--slide-mpp must be a positive level-0 resolution in µm/px (e.g. 0.25)")
    for option, folder in (("--tissue-geojson", cfg.tissue_geojson), ("--annotations", cfg.annotations)):
        if folder is not None and not Path(folder).is_dir():
            raise PathattnError(f"{option} folder not found: {folder}")
    tissue = TissueParams(cfg.seg_mpp, cfg.tissue_method, cfg.tissue_threshold, cfg.median_blur, cfg.close,
                          cfg.min_tissue_area, cfg.min_hole_area)  # fmt: skip
    params = TileParams(GridParams(cfg.mpp, cfg.patch_size, cfg.overlap, cfg.min_tissue), tissue)
    folder = lambda value: Path(value) if value else None  # noqa: E731
    return TileJob(
        Path(cfg.out), params, folder(cfg.tissue_geojson), folder(cfg.annotations), cfg.slide_mpp, cfg.overwrite
    )


def run(cfg: Namespace) -> int:
    """Tile the slides; exit 1 if any failed (or had no tissue, unless --allow-empty)."""
    from pathattn.io.samples import select_slides
    from pathattn.io.volume_samples import lists_volumes, select_volumes
    from pathattn.tile.run import run_tile

    if cfg.workers < 1:
        raise PathattnError("--workers must be at least 1")
    if lists_volumes(cfg.slides, cfg.samples):
        from pathattn.tile.volume import run_tile_volumes

        entries = select_volumes(cfg.slides, cfg.samples, cfg.slide_ids, cfg.modality)
        return run_tile_volumes(_volume_job(cfg), entries, cfg.workers, cfg.allow_empty)
    job = _job(cfg)
    return run_tile(job, select_slides(cfg.slides, cfg.samples, cfg.slide_ids), cfg.workers, cfg.allow_empty)
