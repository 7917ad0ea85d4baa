"""The SUVbw conversion of a DICOM PET series.

**SUVbw** (PET, Units ``BQML``): ``SUV = value x PatientWeight [g] / (RadionuclideTotalDose x
2^(-dt / RadionuclideHalfLife))``, where ``dt`` runs from the injection (RadiopharmaceuticalStartDateTime, else
RadiopharmaceuticalStartTime on the series date) to the series start (SeriesDate/SeriesTime, else the earliest
AcquisitionTime), as the QIBA/Vendor-neutral rule does. It is applied only when DecayCorrection is ``START``
(images decay-corrected to the series start) and every tag is present and positive; otherwise the values stay
in their stored units and the reason is recorded. The outcome is always recorded as
``{"converted": bool, "factor": float, "reason": str}``; no conversion is never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM


def suv_conversion(slices: Sequence[Dataset]) -> dict[str, Any]:
    """The SUVbw factor of a PET series (module docstring), or the reason it does not apply.

    Args:
        slices: the series' headers (the first gives the tags; AcquisitionTime is taken over all).

    Returns:
        ``{"converted": bool, "factor": float, "reason": str}``.
    """
    ds = slices[0]
    units = str(ds.get("Units", ""))
    if units != "BQML":
        return no_suv(f"Units is {units or 'missing'}, not BQML")
    if str(ds.get("DecayCorrection", "")) != "START":
        return no_suv(f"DecayCorrection is {ds.get('DecayCorrection') or 'missing'}, not START")
    info = ds.get("RadiopharmaceuticalInformationSequence")
    drug = info[0] if info else Dataset()
    weight, dose, half_life = (
        _positive(ds, "PatientWeight"),
        _positive(drug, "RadionuclideTotalDose"),
        _positive(drug, "RadionuclideHalfLife"),
    )
    missing = [n for n, v in (("PatientWeight", weight), ("RadionuclideTotalDose", dose),
                              ("RadionuclideHalfLife", half_life)) if v is None]  # fmt: skip
    if missing:
        return no_suv(f"{', '.join(missing)} missing or not positive")
    start, injection = _scan_start(slices), _injection(drug, ds)
    if start is None or injection is None:
        return no_suv("no injection time (RadiopharmaceuticalStart[Date]Time) or series start time")
    elapsed = (start - injection).total_seconds()
    if elapsed < 0:
        return no_suv(f"injection time is {-elapsed:.0f} s after the series start")
    decayed = dose * 2.0 ** (-elapsed / half_life)  # type: ignore[operator]
    factor = weight * 1000.0 / decayed  # type: ignore[operator]
    reason = (
        f"SUVbw = Bq/mL x {weight * 1000.0:g} g / {decayed:.6g} Bq ({dose:.6g} Bq injected {elapsed:.0f} s before the "
        f"series start, half-life {half_life:g} s)"
    )
    return {"converted": True, "factor": float(factor), "reason": reason}


def no_suv(reason: str) -> dict[str, Any]:
    """The record of a series left in its stored units, with the reason."""
    return {"converted": False, "factor": 1.0, "reason": reason}


def _positive(ds: Dataset, tag: str) -> float | None:
    try:
        value = float(ds.get(tag))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _scan_start(slices: Sequence[Dataset]) -> datetime | None:
    ds = slices[0]
    date = ds.get("SeriesDate") or ds.get("AcquisitionDate") or ds.get("StudyDate")
    if ds.get("SeriesTime"):
        return _combine(date, ds.SeriesTime)
    times = [_combine(s.get("AcquisitionDate") or date, s.AcquisitionTime) for s in slices if s.get("AcquisitionTime")]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def _injection(drug: Dataset, ds: Dataset) -> datetime | None:
    if drug.get("RadiopharmaceuticalStartDateTime"):
        value = DT(str(drug.RadiopharmaceuticalStartDateTime))
        return value.replace(tzinfo=None)
    if drug.get("RadiopharmaceuticalStartTime"):
        return _combine(ds.get("SeriesDate") or ds.get("AcquisitionDate") or ds.get("StudyDate"),
                        drug.RadiopharmaceuticalStartTime)  # fmt: skip
    return None


def _combine(date: Any, time: Any) -> datetime | None:
    try:
        day = DA(str(date)) if date else datetime(2000, 1, 1).date()  # no date: same (arbitrary) day
        return datetime.combine(day, TM(str(time)))
    except (TypeError, ValueError):
        return None
