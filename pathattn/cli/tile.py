"""``pathattn tile``: whole-slide images into patch grids (coordinates, tissue GeoJSON, QC, manifest)."""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "tile whole-slide images into patch grids at a physical resolution"


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
    p.add_argument("--workers", type=int, default=1, help="slides tiled in parallel")
    p.add_argument("--overwrite", action="store_true", help="redo slides that are already finished")
    p.add_argument("--allow-empty", action="store_true",
                   help="exit 0 when a slide has no tissue (its empty coordinates file is still written)")  # fmt: skip
    subcommands.add_subcommand("tile", p, help=HELP)


def _job(cfg: Namespace):  # noqa: ANN202 - TileJob, imported lazily
    from pathattn.tile.params import GridParams, TileParams, TissueParams
    from pathattn.tile.run import TileJob

    if cfg.workers < 1:
        raise PathattnError("--workers must be at least 1")
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
    from pathattn.tile.run import run_tile

    job = _job(cfg)
    return run_tile(job, select_slides(cfg.slides, cfg.samples, cfg.slide_ids), cfg.workers, cfg.allow_empty)
