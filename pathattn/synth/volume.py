"""A synthetic CT / PET / MR cohort with lesion labels and survival (``pathattn synth volume``).

Layout of ``out`` (paths in ``samples.csv`` are relative to ``out``)::

    samples.csv                      volume_id, patient_id, centre, label, ct_path, pet_path, label_path,
                                     time, event (and mr_path when MR is generated)
    cohort.json                      the parameters, and per volume its grids and ground truth (lesions)
    images/{volume_id}_ct.nii.gz     CT, HU, int16
    images/{volume_id}_pet.nii.gz    PET, SUVbw (g/mL), float32, on a grid twice as coarse in-plane
    images/{volume_id}_mr.nii.gz     T2-like MR, arbitrary units, float32, on the CT grid
    images/{volume_id}_label.nii.gz  lesion label on the CT grid, int16 (0 background, 1 lesion)
    dicom/{volume_id}_ct/IM*.dcm     for the DICOM subset: the CT as a series (``ct_path`` points here)
    dicom/{volume_id}_pet/IM*.dcm    for the DICOM subset: the PET as a series in Bq/mL (reference only)

Every NIfTI is stored as DICOM/ITK would store it (axcodes LPS: i towards L, j towards P, k towards S), with
the sform and qform set; gzip streams carry no time stamp, so the same cohort gives the same bytes.
Patients, labels and studies are drawn per patient from child seeds, so patient *k* is the same whatever the
size of the cohort. Valid outputs made with the same parameters are kept (resume) unless ``overwrite``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import remove_stale_temporaries, write_text_atomic
from pathattn.io.nifti import write_nifti
from pathattn.synth import volume_anatomy as A
from pathattn.synth import volume_scanner as S
from pathattn.synth.volume_dicom import SeriesInfo, dicom_uid, remove_stale_series, series_is_complete, write_series

CSV_COLUMNS = ("volume_id", "patient_id", "centre", "label", "ct_path", "pet_path", "label_path", "time", "event")
DEFAULT_SHAPE = (96, 96, 40)
DEFAULT_MODALITIES = ("ct", "pet")
BYTES_PER_VOXEL = 120  # peak memory of rendering one study, per CT voxel (measured: 85 with CT, PET and MR)
GENERATOR = "pathattn.synth.volume/1"


@dataclass(frozen=True)
class StudyPlan:
    """One study of one patient: everything needed to render and write it.

    Args:
        volume_id: ``{patient_id}_s{study}``.
        patient_id: ``P000``, ``P001``, ...
        patient: the patient's index.
        study: 1 or 2.
        centre: ``A`` or ``B`` (:data:`~pathattn.synth.volume_anatomy.SCANNERS`).
        positive: whether the patient has lesions.
        dicom: whether the CT (and PET) are also written as DICOM series.
        weight_kg: patient weight (SUVbw).
        anatomy: the patient as scanned in this study (lesions grow or shrink between studies).
        grid: the CT grid.
        offset: RAS world position of the patient frame's origin, mm.
        render_seed: seed of the noise of this study.
    """

    volume_id: str
    patient_id: str
    patient: int
    study: int
    centre: str
    positive: bool
    dicom: bool
    weight_kg: float
    anatomy: A.Anatomy
    grid: S.Grid
    offset: tuple[float, float, float]
    render_seed: int


def parse_modalities(text: str) -> tuple[str, ...]:
    """``"ct,pet"`` → ``("ct", "pet")``, in the order ct, pet, mr.

    Raises:
        PathattnError: an unknown modality, or neither ``ct`` nor ``mr`` (the label needs an anatomical grid).
    """
    names = {n.strip().lower() for n in text.split(",") if n.strip()}
    if unknown := sorted(names - set(A.MODALITIES)):
        raise PathattnError(f"--modalities: unknown {', '.join(unknown)}; choose from ct, pet, mr (e.g. ct,pet)")
    if not names & {"ct", "mr"}:
        raise PathattnError(f"--modalities {text!r} needs ct or mr (the label lies on their grid); e.g. ct,pet")
    return tuple(m for m in A.MODALITIES if m in names)


def _stream(seed: int, *key: int) -> np.random.Generator:
    """The random stream of ``seed`` named by ``key`` (independent of every other key)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def plan_patient(
    seed: int, p: int, shape: tuple[int, int, int], dicom_fraction: float, digits: int = 3
) -> list[StudyPlan]:
    """The studies of patient ``p`` (one, or two in about 30% of patients).

    Each block of four consecutive patients holds the four combinations of label (positive or not) and
    centre (A or B) in a random order, so the label does not depend on the centre.
    Patient ``p`` is in the DICOM subset when ``floor((p + 1) f) > floor(p f)`` for ``f = dicom_fraction``:
    every ``1/f``-th patient (patients 3, 7, 11, ... for 0.25).
    """
    combo = int(_stream(seed, 101, p // 4).permutation(4)[p % 4])  # (label, centre) balanced by blocks of 4
    positive, centre = bool(combo & 1), "AB"[combo >> 1]
    scanner, rng = S.SCANNERS[centre], _stream(seed, 103, p)
    body = A.plan_body(rng)
    anatomy = A.Anatomy(body, A.plan_organs(rng, body), (), int(rng.integers(2**62)), float(rng.uniform(0.05, 0.25)))
    n_studies, weight = 2 if rng.random() < 0.3 else 1, round(float(rng.uniform(50, 100)), 1)
    shift, table = rng.uniform(-10, 10, 2), rng.uniform(-400, -100)
    studies = [(table, np.zeros(3)), (table + rng.uniform(-20, 20), np.clip(rng.normal(0, 3, 3), -6, 6))]
    if positive:
        z_limit = 0.5 * (shape[2] - 1) * scanner.thickness_mm - 8
        anatomy = dataclasses.replace(anatomy, lesions=A.plan_lesions(_stream(seed, 106, p), anatomy, z_limit))
    growth = _stream(seed, 107, p).uniform(0.75, 1.35, len(anatomy.lesions))
    dicom = int(np.floor((p + 1) * dicom_fraction)) > int(np.floor(p * dicom_fraction))
    plans = []
    for s in range(n_studies):
        lesions = tuple(
            dataclasses.replace(les, radii=tuple(r * (g if s else 1.0) for r in les.radii))
            for les, g in zip(anatomy.lesions, growth, strict=True)
        )
        table_z, jitter = studies[s]
        offset = (shift[0] + jitter[0], shift[1] + jitter[1], table_z + jitter[2])
        plans.append(StudyPlan(
            f"P{p:0{digits}d}_s{s + 1}", f"P{p:0{digits}d}", p, s + 1, centre, bool(positive), dicom, weight,
            dataclasses.replace(anatomy, lesions=lesions), S.Grid.of_scanner(scanner, shape, table_z),
            tuple(round(float(v), 3) for v in offset), int(_stream(seed, 104, p, s).integers(2**62)),
        ))  # fmt: skip
    return plans


def plan_cohort(seed: int, n_patients: int, shape: tuple[int, int, int], dicom_fraction: float) -> list[StudyPlan]:
    """The studies of patients ``0 .. n_patients - 1`` (:func:`plan_patient`), patient by patient."""
    digits = max(3, len(str(n_patients - 1)))
    return [plan for p in range(n_patients) for plan in plan_patient(seed, p, shape, dicom_fraction, digits)]


def render_study(plan: StudyPlan, modalities: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The images of a study: ``ct`` (HU int16), ``pet`` (SUVbw float32, PET grid), ``mr`` (float32)."""
    scanner, offset = S.SCANNERS[plan.centre], np.array(plan.offset)
    painted = A.paint_anatomy(plan.anatomy, plan.grid, offset, modalities)
    seeds = np.random.SeedSequence(plan.render_seed).spawn(len(A.MODALITIES))
    rngs = {m: np.random.default_rng(s) for m, s in zip(A.MODALITIES, seeds, strict=True)}
    images = {}
    if "ct" in modalities:
        images["ct"] = S.ct_image(painted.pop("ct"), plan.grid, scanner, rngs["ct"])
    if "pet" in modalities:
        images["pet"] = S.pet_image(painted.pop("pet"), plan.grid, scanner, rngs["pet"])
    if "mr" in modalities:
        images["mr"] = S.mr_image(painted.pop("mr"), plan.grid, scanner, offset, rngs["mr"])
    return images


def _nifti_is_valid(path: Path, shape: tuple[int, ...], affine: np.ndarray) -> bool:
    """Whether ``path`` is a complete NIfTI of this shape and affine."""
    import nibabel as nib

    try:
        image = nib.load(path)
        np.asarray(image.dataobj)
        return image.shape == tuple(shape) and np.allclose(image.affine, affine, atol=1e-4)
    except Exception:  # noqa: BLE001 - whatever is wrong, the file is written again
        return False


def _outputs(plan: StudyPlan, modalities: tuple[str, ...]) -> dict[str, str]:
    """The files of a study, relative to ``out``: ``{name: path}`` (``ct_dicom``/``pet_dicom`` are folders)."""
    vid, dicom = plan.volume_id, plan.dicom
    files = {m: f"images/{vid}_{m}.nii.gz" for m in modalities} | {"label": f"images/{vid}_label.nii.gz"}
    return files | {f"{m}_dicom": f"dicom/{vid}_{m}" for m in ("ct", "pet") if dicom and m in modalities}


def _is_complete(out: Path, plan: StudyPlan, modalities: tuple[str, ...]) -> bool:
    """Whether every output of the study exists and reads back with the expected grid."""
    pet = plan.grid.coarsened()
    for name, rel in _outputs(plan, modalities).items():
        grid = pet if name.startswith("pet") else plan.grid
        ok = (series_is_complete(out / rel, grid.shape) if name.endswith("_dicom")
              else _nifti_is_valid(out / rel, grid.shape, grid.affine))  # fmt: skip
        if not ok:
            return False
    return True


def _write_study(out: Path, plan: StudyPlan, images: dict[str, np.ndarray], label: np.ndarray) -> None:
    """Write the NIfTI files of a study and, for the DICOM subset, its DICOM series."""
    units = {"ct": "CT HU", "pet": "PET SUVbw g/ml", "mr": "MR T2-like a.u."}
    pet_grid = plan.grid.coarsened()
    for name, array in images.items():
        grid = pet_grid if name == "pet" else plan.grid
        write_nifti(out / f"images/{plan.volume_id}_{name}.nii.gz", array, grid.affine, f"pathattn synth {units[name]}")
    write_nifti(out / f"images/{plan.volume_id}_label.nii.gz", label, plan.grid.affine, "pathattn synth lesion label")
    if not plan.dicom:
        return
    study_uid = dicom_uid(plan.volume_id, str(plan.render_seed))
    dose = round(3.7e6 * plan.weight_kg, -3)  # 3.7 MBq/kg
    info = SeriesInfo(plan.patient_id, study_uid, dicom_uid(study_uid, "frame"), f"2024{plan.study * 3:02d}15",
                      plan.centre, S.SCANNERS[plan.centre].model, plan.weight_kg, dose)  # fmt: skip
    names = np.random.default_rng(plan.render_seed).permutation(plan.grid.shape[2])
    for name, modality in (("ct", "CT"), ("pet", "PT")):
        if name in images:
            grid = pet_grid if name == "pet" else plan.grid
            write_series(out / f"dicom/{plan.volume_id}_{name}", images[name], grid, info, modality, names)


def _truth(plan: StudyPlan, label: np.ndarray, seen: int, modalities: tuple[str, ...]) -> dict[str, Any]:
    """The ground truth and grids of a study, for ``cohort.json``."""
    pet = plan.grid.coarsened()
    world = np.array(plan.offset)
    return {
        "volume_id": plan.volume_id, "patient_id": plan.patient_id, "study": plan.study, "centre": plan.centre,
        "label": int(label.any()), "dicom": plan.dicom, "weight_kg": plan.weight_kg,
        "outputs": _outputs(plan, modalities),
        "shape": list(plan.grid.shape), "spacing": list(plan.grid.spacing), "affine": plan.grid.affine.tolist(),
        "pet_shape": list(pet.shape), "pet_spacing": list(pet.spacing), "pet_affine": pet.affine.tolist(),
        "n_lesions": seen, "lesion_voxels": int(label.sum()),
        "lesion_volume_ml": round(sum(les.volume_ml for les in plan.anatomy.lesions), 3),
        "lesions": [{"host": les.host, "centre_ras_mm": [round(float(c), 2) for c in np.array(les.centre) + world],
                     "radii_mm": [round(r, 2) for r in les.radii], "hu": round(les.values[0], 1),
                     "suv": round(les.values[1], 2)} for les in plan.anatomy.lesions],
        "distractor_suv": {o.name: round(o.values[1], 2) for o in plan.anatomy.organs if o.values[1] >= 4},
    }  # fmt: skip


def _survival(seed: int, patient: int, positive: bool, volume_ml: float) -> tuple[float, int]:
    """Survival (months, 0.1 precision) and event: Weibull, hazard growing with lesion volume; censoring."""
    rng = _stream(seed, 105, patient)
    risk = 0.4 * positive + 0.9 * np.log1p(volume_ml / 5.0) + rng.normal(0, 0.3)
    event_time = 90.0 * (-np.log(rng.uniform(1e-9, 1.0)) / np.exp(risk)) ** (1 / 1.2)
    censor = rng.uniform(12.0, 120.0)
    return round(float(max(min(event_time, censor), 0.1)), 1), int(event_time <= censor)


def _params(seed: int, shape: tuple[int, int, int], modalities: tuple[str, ...], dicom_fraction: float) -> dict:
    """The parameters that decide the content of every volume (``n_patients`` does not)."""
    return {"generator": GENERATOR, "seed": seed, "shape": list(shape), "modalities": list(modalities),
            "dicom_fraction": dicom_fraction}  # fmt: skip


def _previous_params(out: Path) -> dict[str, Any]:
    """The parameters of the cohort already in ``out`` (without ``n_patients``); empty when there is none."""
    try:
        params = json.loads((out / "cohort.json").read_text(encoding="utf-8"))["params"]
        return {k: v for k, v in params.items() if k != "n_patients"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def generate_volume_cohort(
    out: str | Path,
    n_patients: int = 24,
    seed: int = 0,
    *,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    modalities: tuple[str, ...] = DEFAULT_MODALITIES,
    dicom_fraction: float = 0.25,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Generate a synthetic volume cohort (layout in the module docstring).

    Args:
        out: the output folder.
        n_patients: number of patients (about half positive; about 30% with two studies).
        seed: cohort seed; patient k is the same whatever ``n_patients``.
        shape: ``(I, J, K)`` voxels of every CT grid (in-plane spacing = the centre's FOV / I).
        modalities: some of ``ct``, ``pet``, ``mr`` (at least ``ct`` or ``mr``).
        dicom_fraction: fraction of patients whose CT (and PET) are also DICOM series.
        overwrite: regenerate outputs that exist and are valid.
        progress: called with each volume id once that volume is done.

    Returns:
        The path of ``samples.csv``.
    """
    out, shape = Path(out), tuple(int(v) for v in shape)
    params = _params(seed, shape, modalities, dicom_fraction)
    regenerate = overwrite or _previous_params(out) != params
    for folder in (out / "images", out / "dicom"):
        folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / "images")
    remove_stale_series(out / "dicom")
    params_n = {**params, "n_patients": n_patients}
    write_text_atomic(out / "cohort.json", json.dumps({"params": params_n, "volumes": []}))
    truth = []
    for plan in plan_cohort(seed, n_patients, shape, dicom_fraction):
        label, seen = A.lesion_label(plan.anatomy.lesions, plan.grid, np.array(plan.offset))
        if regenerate or not _is_complete(out, plan, modalities):
            _write_study(out, plan, render_study(plan, modalities), label)
        truth.append(_truth(plan, label, seen, modalities))
        if progress is not None:
            progress(plan.volume_id)
    return _write_tables(out, seed, params_n, truth)


def _write_tables(out: Path, seed: int, params: dict[str, Any], truth: list[dict[str, Any]]) -> Path:
    """Write ``samples.csv`` (survival per patient, from the lesion volume of its first study) and ``cohort.json``."""
    mr = "mr" in params["modalities"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + (("mr_path",) if mr else ()))
    first: dict[str, dict[str, Any]] = {}
    for t in truth:
        first.setdefault(t["patient_id"], t)
        base = first[t["patient_id"]]
        time, event = _survival(seed, int(t["patient_id"][1:]), bool(base["lesions"]), base["lesion_volume_ml"])
        files = t["outputs"]
        row = [t["volume_id"], t["patient_id"], t["centre"], t["label"], files.get("ct_dicom", files.get("ct", "")),
               files.get("pet", ""), files["label"], f"{time:.1f}", event] + ([files["mr"]] if mr else [])  # fmt: skip
        writer.writerow(row)
    write_text_atomic(out / "samples.csv", buf.getvalue())
    write_text_atomic(out / "cohort.json", json.dumps({"params": params, "volumes": truth}, indent=1))
    return out / "samples.csv"


def check_volume_memory(shape: tuple[int, int, int]) -> None:
    """Refuse a ``--shape`` whose rendering would not fit in memory, before anything is allocated.

    Raises:
        PathattnError: naming ``--shape``, the memory needed and the memory available.
    """
    from pathattn.synth.cohort import available_memory

    needed, available = int(np.prod(shape)) * BYTES_PER_VOXEL, available_memory()
    if available is not None and needed > available:
        raise PathattnError(
            f"--shape {list(shape)} needs about {needed / 2**30:,.1f} GiB of memory to render one study, more than "
            f"the {available / 2**30:,.1f} GiB available; use a smaller --shape (the default is {list(DEFAULT_SHAPE)})"
        )


def run_synth_volume(
    out: str | Path, n_patients: int, seed: int, overwrite: bool, shape: tuple[int, int, int],
    modalities: tuple[str, ...], dicom_fraction: float,
) -> int:  # fmt: skip
    """``pathattn synth volume``: :func:`generate_volume_cohort` with a progress bar; print the sample sheet's path."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("synth volume"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("", total=len(plan_cohort(seed, n_patients, shape, dicom_fraction)))
        csv_path = generate_volume_cohort(
            out, n_patients, seed, shape=shape, modalities=modalities, dicom_fraction=dicom_fraction,
            overwrite=overwrite, progress=lambda vid: progress.update(task, advance=1, description=vid),
        )  # fmt: skip
    print(csv_path)
    return 0
