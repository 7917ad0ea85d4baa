"""A synthetic cohort: slides, tumor ground truth, ``samples.csv`` (labels, survival) and ``cohort.json``.

Patients, labels and survival are drawn per patient from child seeds, so slide *k* is the same whatever
the size of the cohort. Valid slides that exist already are kept (resume) unless ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import remove_stale_temporaries, write_text_atomic
from pathattn.synth.wsi import DEFAULT_SIZE, plan_slide, render_slide, write_slide, write_truth

CSV_COLUMNS = ("slide_id", "patient_id", "label", "time", "event", "slide_path")
BYTES_PER_PIXEL = 24  # peak memory of rendering and writing one slide, per level-0 pixel (measured: 16-24)


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use: ``MemAvailable`` (Linux), else the physical memory (None: unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return None


def check_slide_memory(width: int, height: int) -> None:
    """Refuse a slide size whose rendering would not fit in memory, before anything is allocated.

    A slide is rendered whole: about :data:`BYTES_PER_PIXEL` bytes per level-0 pixel at the peak.

    Raises:
        PathattnError: naming ``--width`` and ``--height``, the memory needed and the memory available.
    """
    needed, available = width * height * BYTES_PER_PIXEL, available_memory()
    if available is not None and needed > available:
        raise PathattnError(
            f"--width {width} x --height {height} px needs about {needed / 2**30:,.1f} GiB of memory to render one "
            f"slide, more than the {available / 2**30:,.1f} GiB available; use smaller --width/--height (the "
            f"defaults are {DEFAULT_SIZE['width']} x {DEFAULT_SIZE['height']})"
        )


def _patients(seed: int, n_slides: int) -> list[tuple[int, int, float]]:
    """``(patient index, label, burden)`` per slide; slide k does not depend on ``n_slides``.

    Patients come in pairs, one with tumor and one without, so labels are balanced; about 30% of patients
    have two slides (with the same label).
    """
    rows: list[tuple[int, int, float]] = []
    p = 0
    while len(rows) < n_slides:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, p)))
        first = int(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, p // 2))).integers(2))
        burden = float(np.clip(rng.lognormal(0.0, 0.3), 0.6, 1.6))
        rows += [(p, int(p % 2 == first), burden)] * (2 if rng.random() < 0.3 else 1)
        p += 1
    return rows[:n_slides]


def _survival(seed: int, patient: int, label: int, area_mm2: float) -> tuple[float, int]:
    """Survival (months, 0.1 precision) and event: Weibull, hazard growing with tumor area; censoring."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, patient)))
    risk = 0.4 * label + 0.8 * np.log1p(area_mm2 / 0.05) + rng.normal(0, 0.3)
    event_time = 90.0 * (-np.log(rng.uniform(1e-9, 1.0)) / np.exp(risk)) ** (1 / 1.2)
    censor = rng.uniform(12.0, 120.0)
    return round(float(max(min(event_time, censor), 0.1)), 1), int(event_time <= censor)


def _valid_slide(path: Path, width: int, height: int) -> bool:
    """Whether ``path`` is a slide that OpenSlide opens, with the expected level-0 size."""
    import openslide

    try:
        with openslide.OpenSlide(str(path)) as slide:
            return slide.dimensions == (width, height)
    except Exception:  # noqa: BLE001 - whatever is wrong, the slide is regenerated
        return False


def generate_cohort(
    out: str | Path,
    n_slides: int = 12,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    **slide_kwargs: Any,
) -> Path:
    """Generate a synthetic cohort: slides, tumor GeoJSON, ``samples.csv`` and ``cohort.json``.

    Writes ``out/slides/{slide_id}.tif``, ``out/annotations/{slide_id}.geojson``, ``out/samples.csv``
    (``slide_id,patient_id,label,time,event,slide_path``; paths relative to ``out``) and ``out/cohort.json``
    (the parameters, and per slide: label, tumor area in mm², number of tumor regions, distractors).
    Slides that exist, open, and were made with the same parameters are kept (resume) unless ``overwrite``.

    Args:
        out: the output folder.
        n_slides: number of slides.
        seed: cohort seed; slide k is the same whatever ``n_slides``.
        overwrite: regenerate existing slides.
        progress: called with each slide id once that slide is done.
        **slide_kwargs: ``width``, ``height`` and ``mpp`` of every slide (see :func:`plan_slide`).

    Returns:
        The path of ``samples.csv``.

    Raises:
        PathattnError: the slides would not fit in memory (:func:`check_slide_memory`).
    """
    out = Path(out)
    if set(slide_kwargs) - set(DEFAULT_SIZE):
        raise TypeError(f"generate_cohort() takes only {sorted(DEFAULT_SIZE)} as slide options")
    size = {**DEFAULT_SIZE, **slide_kwargs}
    check_slide_memory(size["width"], size["height"])
    params = {"generator": "pathattn.synth.wsi/1", "seed": seed, **size}
    try:
        previous = json.loads((out / "cohort.json").read_text(encoding="utf-8"))["params"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = {}
    regenerate = overwrite or {k: v for k, v in previous.items() if k != "n_slides"} != params
    for folder in (out / "slides", out / "annotations"):
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
    params_n = {**params, "n_slides": n_slides}
    write_text_atomic(out / "cohort.json", json.dumps({"params": params_n, "slides": []}))
    digits, truth = max(3, len(str(n_slides - 1))), []
    for k, (patient, label, burden) in enumerate(_patients(seed, n_slides)):
        slide_id = f"slide_{k:0{digits}d}"
        slide_path = out / "slides" / f"{slide_id}.tif"
        truth_path = out / "annotations" / f"{slide_id}.geojson"
        plan = plan_slide(np.random.SeedSequence(seed, spawn_key=(0, k)), label=label, burden=burden, **size)
        fresh = regenerate or not _valid_slide(slide_path, size["width"], size["height"])
        if fresh:
            write_slide(slide_path, render_slide(plan), size["mpp"])
        if fresh or not truth_path.exists():
            write_truth(truth_path, plan)
        truth.append(
            {
                "slide_id": slide_id,
                "patient_id": f"patient_{patient:0{digits}d}",
                "label": label,
                "tumor_area_mm2": round(plan.tumor_area_mm2, 6),
                "n_tumor_regions": len(plan.tissue.tumors),
                "distractors": plan.distractors,
            }
        )
        if progress is not None:
            progress(slide_id)
    return _write_tables(out, seed, params_n, truth)


def _write_tables(out: Path, seed: int, params: dict[str, Any], truth: list[dict[str, Any]]) -> Path:
    """Write ``samples.csv`` (survival per patient, from its mean tumor area) and ``cohort.json``."""
    areas: dict[str, list[float]] = {}
    for t in truth:
        areas.setdefault(t["patient_id"], []).append(t["tumor_area_mm2"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in truth:
        patient = int(t["patient_id"].split("_")[1])
        time, event = _survival(seed, patient, t["label"], float(np.mean(areas[t["patient_id"]])))
        slide_path = f"slides/{t['slide_id']}.tif"
        writer.writerow([t["slide_id"], t["patient_id"], t["label"], f"{time:.1f}", event, slide_path])
    write_text_atomic(out / "samples.csv", buf.getvalue())
    write_text_atomic(out / "cohort.json", json.dumps({"params": params, "slides": truth}, indent=1))
    return out / "samples.csv"


def run_synth_wsi(
    out: str | Path, n_slides: int, seed: int, overwrite: bool, width: int, height: int, mpp: float
) -> int:
    """``pathattn synth wsi``: :func:`generate_cohort` with a progress bar; print the sample sheet's path."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("synth wsi"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("", total=n_slides)
        csv_path = generate_cohort(
            out, n_slides, seed, overwrite=overwrite, width=width, height=height, mpp=mpp,
            progress=lambda slide_id: progress.update(task, advance=1, description=slide_id),
        )  # fmt: skip
    print(csv_path)
    return 0
