"""``pathattn heatmap``: attention over the slide thumbnail (PNG) and over the patches (QuPath GeoJSON)."""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "render attention heatmaps (PNG) and export patch attention and top patches as QuPath GeoJSON"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``heatmap`` parser."""
    from pathattn.cli.options import CHECKPOINT_HELP, add_model_options
    from pathattn.scoremaps.normalise import NORMALISATIONS

    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    add_model_options(p, "instead of --predictions: " + CHECKPOINT_HELP + ", run on --features", run=False)
    p.add_argument("--predictions", type=str | None, default=None,
                   help="output folder of 'pathattn predict' (attention/{slide_id}.h5, predictions.csv)")  # fmt: skip
    p.add_argument("--features", type=str | None, default=None,
                   help="with --checkpoint: folder of feature files ('pathattn extract' output)")  # fmt: skip
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="render only these slides (one job per slide in a workflow)")  # fmt: skip
    p.add_argument("--out", type=str, required=True, help="folder of the PNG and GeoJSON files and manifest.csv")
    p.add_argument("--tiles", type=str | None, default=None,
                   help="'pathattn tile' output folder: its tissue/{slide_id}.geojson masks the heatmap")  # fmt: skip
    p.add_argument("--samples", type=str | None, default=None,
                   help="sample sheet whose slide_path column points to slides that moved since tiling")  # fmt: skip
    p.add_argument("--normalise", type=str, default="percentile", choices=list(NORMALISATIONS),
                   help="per-slide normalisation (percentile: rank among the slide's patches)")  # fmt: skip
    p.add_argument("--top-k", type=int, default=20, help="patches in the {slide_id}_top{k}.geojson file")
    p.add_argument("--head", type=int, default=0, help="attention head drawn (multi-head models)")
    p.add_argument("--cmap", type=str, default="jet", help="matplotlib colormap")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the colours, 0-1")
    p.add_argument("--thumbnail-mpp", type=float | None, default=None,
                   help="µm/px of the thumbnail (default: about 1024 px on the slide's long side)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="redo slides whose outputs exist")
    subcommands.add_subcommand("heatmap", p, help=HELP)


def _source(cfg: Namespace):  # noqa: ANN202 - PredictedScores or CheckpointScores, imported lazily
    from pathattn.devices import resolve_device
    from pathattn.errors import PathattnError
    from pathattn.explain.heatmap_run import CheckpointScores, PredictedScores

    if (cfg.predictions is None) == (cfg.checkpoint is None):
        raise PathattnError("give either --predictions (a 'pathattn predict' run) or --checkpoint with --features")
    if cfg.predictions is not None:
        return PredictedScores(Path(cfg.predictions))
    if cfg.features is None:
        raise PathattnError("--checkpoint needs --features (the feature files the model runs on)")
    device = str(resolve_device(cfg.device))
    return CheckpointScores(Path(cfg.checkpoint), Path(cfg.features), cfg.checkpoint_format, device)


def run(cfg: Namespace) -> int:
    """Render the heatmaps; exit 1 if any slide failed."""
    from pathattn.explain.heatmap import HeatmapStyle
    from pathattn.explain.heatmap_run import HeatmapJob, run_heatmaps

    style = HeatmapStyle(cfg.thumbnail_mpp, cfg.normalise, cfg.top_k, cfg.head, cfg.cmap, cfg.alpha)
    folder = lambda value: Path(value) if value else None  # noqa: E731
    job = HeatmapJob(_source(cfg), Path(cfg.out), style, cfg.slide_ids, folder(cfg.tiles), folder(cfg.samples),
                     cfg.overwrite)  # fmt: skip
    return run_heatmaps(job)
