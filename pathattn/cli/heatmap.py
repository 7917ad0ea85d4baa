"""``pathattn heatmap``: attention over the slide thumbnail (PNG) and over the patches (QuPath GeoJSON)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "render attention heatmaps (PNG) and export patch attention and top patches as QuPath GeoJSON"


@dataclass
class HeatmapResult:
    """One row of the manifest."""

    slide_id: str
    status: str
    n_patches: int = 0
    model: str = ""
    tissue_source: str = ""
    seconds: float = 0.0
    slide_path: str = ""
    png: str = ""
    error: str = ""


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``heatmap`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--predictions", type=str, required=True,
                   help="output folder of 'pathattn predict' (attention/{slide_id}.h5, predictions.csv)")  # fmt: skip
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="render only these slides of --predictions (one job per slide in a workflow)")  # fmt: skip
    p.add_argument("--out", type=str, required=True, help="folder of the PNG and GeoJSON files and manifest.csv")
    p.add_argument("--tiles", type=str | None, default=None,
                   help="'pathattn tile' output folder: its tissue/{slide_id}.geojson masks the heatmap")  # fmt: skip
    p.add_argument("--samples", type=str | None, default=None,
                   help="sample sheet whose slide_path column points to slides that moved since tiling")  # fmt: skip
    p.add_argument("--method", type=str, default="percentile", choices=["percentile", "minmax", "softmax", "raw"],
                   help="per-slide normalisation (percentile: rank among the slide's patches)")  # fmt: skip
    p.add_argument("--top-k", type=int, default=20, help="patches in the {slide_id}_top{k}.geojson file")
    p.add_argument("--head", type=int, default=0, help="attention head drawn (multi-head models)")
    p.add_argument("--cmap", type=str, default="jet", help="matplotlib colormap")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the colours, 0-1")
    p.add_argument("--thumbnail-mpp", type=float | None, default=None,
                   help="µm/px of the thumbnail (default: about 1024 px on the slide's long side)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="redo slides whose outputs exist")
    subcommands.add_subcommand("heatmap", p, help=HELP)


def find_attention(folder: str | Path) -> list[Path]:
    """Attention files of a predict run: ``DIR/attention/*.h5``, or ``DIR/*.h5`` when given that folder."""
    from pathattn.io.manifest import run_files

    return run_files(folder, "attention", "--predictions", "predict")


def _number(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def read_captions(path: Path) -> dict[str, str]:
    """Caption text per slide from ``predictions.csv`` (empty without the file).

    ``prediction P (p=0.93)`` with the ``prob_P`` column of a classifier, ``risk 0.53`` for a survival model.
    """
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    captions = {}
    for row in rows:
        prediction = (row.get("prediction") or "").strip()
        prob, risk = _number(row.get(f"prob_{prediction}")), _number(row.get("risk"))
        if prediction:
            text = f"prediction {prediction}" + (f" (p={prob:.2f})" if prob is not None else "")
        else:
            text = f"risk {risk:.3g}" if risk is not None else ""
        if row.get("slide_id") and text:
            captions[row["slide_id"]] = text
    return captions


def _check(cfg: Namespace) -> None:
    import matplotlib

    if cfg.cmap not in matplotlib.colormaps:
        raise PathattnError(f"--cmap {cfg.cmap} is not a matplotlib colormap; use e.g. jet, viridis, coolwarm")
    if not 0.0 <= cfg.alpha <= 1.0:
        raise PathattnError(f"--alpha must be in [0, 1] (opacity of the colours), got {cfg.alpha}")
    if cfg.top_k < 0 or cfg.head < 0:
        raise PathattnError("--top-k and --head must be 0 or more")
    if cfg.thumbnail_mpp is not None and not cfg.thumbnail_mpp > 0:
        raise PathattnError("--thumbnail-mpp must be a positive resolution in µm/px (e.g. 8)")
    if cfg.tiles is not None and not Path(cfg.tiles).is_dir():
        raise PathattnError(f"--tiles folder not found: {cfg.tiles}; pass the output folder of 'pathattn tile'")
    if cfg.samples is not None and not Path(cfg.samples).is_file():
        raise PathattnError(f"--samples sheet not found: {cfg.samples}; pass a CSV/TSV with a slide_path column")


def _tissue_file(tiles: str | None, slide_id: str) -> Path | None:
    path = Path(tiles) / "tissue" / f"{slide_id}.geojson" if tiles else None
    return path if path is not None and path.is_file() else None


def _one(file: Path, cfg: Namespace, slide_paths: dict[str, Path], captions: dict[str, str]) -> HeatmapResult:
    """Heatmap of one attention file; a failure is recorded in the result, never raised."""
    from pathattn.explain.heatmap import heatmap_slide, output_paths

    slide_id, start = file.stem, time.perf_counter()
    tissue = _tissue_file(cfg.tiles, slide_id)
    result = HeatmapResult(slide_id, "done", tissue_source=str(tissue or "patches"))
    paths = output_paths(cfg.out, slide_id, cfg.top_k)
    if not cfg.overwrite and all(p.is_file() for p in paths.values()):
        result.status, result.png = "skipped", str(paths["png"])
        return result
    try:
        done = heatmap_slide(
            file, cfg.out, slide_path=slide_paths.get(slide_id), tissue_geojson=tissue,
            thumbnail_mpp=cfg.thumbnail_mpp, method=cfg.method, top_k=cfg.top_k, head=cfg.head, cmap=cfg.cmap,
            alpha=cfg.alpha, prediction=captions.get(slide_id, ""),
        )  # fmt: skip
        result.n_patches, result.model, result.slide_path, result.png = (
            done["n_patches"], done["model"], done["slide_path"], str(done["png"])
        )  # fmt: skip
    except PathattnError as err:
        result.status, result.error = "failed", str(err)
    except Exception as err:  # noqa: BLE001 - one bad slide must not stop the batch
        result.status, result.error = "failed", " ".join(f"{type(err).__name__}: {err}".split())
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def run(cfg: Namespace) -> int:
    """Render the heatmaps; exit 1 if any slide failed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pathattn.cli.summary import summarize
    from pathattn.io.atomic import remove_stale_temporaries
    from pathattn.io.manifest import write_manifest
    from pathattn.io.samples import read_sample_sheet, select_ids

    _check(cfg)
    found = {f.stem: f for f in find_attention(cfg.predictions)}
    files = list(select_ids(found, cfg.slide_ids, f"--predictions {cfg.predictions}").values())
    slide_paths = {e.slide_id: e.path for e in read_sample_sheet(cfg.samples)} if cfg.samples else {}
    captions = read_captions(Path(cfg.predictions) / "predictions.csv")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    manifest = out / "manifest.csv"
    results: list[HeatmapResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("heatmap", total=len(files))
        for file in files:
            results.append(_one(file, cfg, slide_paths, captions))
            write_manifest(manifest, HeatmapResult, results)
            if results[-1].status == "failed":
                progress.console.print(f"[red]failed[/] {results[-1].slide_id}: {results[-1].error}", highlight=False)
            progress.update(task, advance=1)
    return 1 if summarize("heatmap", results, manifest) else 0
