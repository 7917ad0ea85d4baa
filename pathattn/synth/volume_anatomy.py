"""Synthetic patients of ``pathattn synth volume``: anatomy in millimetres, painted on a scanner's grid.

A patient is a set of smooth shapes in a *patient frame* (RAS millimetres: +x towards the patient's right,
+y anterior, +z superior; origin in the middle of the abdomen): an elliptical body outline with a fat layer
and some visceral fat, ellipsoid organs (lungs, heart, liver, kidneys, bladder, aorta, spine), a CT table
and, for a positive patient, 1-4 ellipsoid lesions in the liver or in soft tissue. :func:`paint_anatomy`
paints the noiseless CT (HU), PET (SUV) and MR (T2-like, arbitrary units) values of a study on the thin
slices of its :class:`~pathattn.synth.volume_scanner.Grid`, and :func:`lesion_label` the lesion label; the
scanner effects are in :mod:`pathattn.synth.volume_scanner`. The values of every tissue are in :data:`FAT`,
:data:`SOFT`, :data:`TABLE` and :func:`plan_organs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pathattn.synth.volume_scanner import SUBSLICES, Grid

Values = tuple[float, float, float]  # (CT HU, PET SUV, MR a.u.) of a tissue
AIR: Values = (-1000.0, 0.0, 0.0)
FAT: Values = (-100.0, 0.4, 320.0)
SOFT: Values = (40.0, 1.0, 110.0)
TABLE: Values = (250.0, 0.0, 0.0)
MODALITIES = ("ct", "pet", "mr")
MIN_LESION_RADIUS_MM = 6.0  # the smallest lesion (plan_lesions)
_LATTICE_MM, _LATTICE_HALF = 8.0, (240.0, 240.0, 320.0)  # smooth-noise lattice of the patient frame


@dataclass(frozen=True)
class Blob:
    """An ellipsoid organ or lesion.

    Args:
        name: organ name (``liver``, ``kidney_right``, ...) or ``lesion``.
        centre: ``(x, y, z)`` in the patient frame, mm.
        radii: semi-axes before the rotation, mm.
        angle: rotation about the z axis, radians.
        values: (CT HU, PET SUV, MR a.u.).
        host: for a lesion, the organ it grows in (``liver`` or ``soft``).
    """

    name: str
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle: float
    values: Values
    host: str = ""

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance to the surface (negative inside), mm; arrays broadcast together."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        u = (dx * c + dy * s) / self.radii[0]
        v = (-dx * s + dy * c) / self.radii[1]
        w = dz / self.radii[2]
        rn = np.sqrt(u * u + v * v + w * w)
        grad = np.sqrt((u / self.radii[0]) ** 2 + (v / self.radii[1]) ** 2 + (w / self.radii[2]) ** 2)
        return (rn * rn - rn) / np.maximum(grad, 1e-9)

    @property
    def volume_ml(self) -> float:
        """Volume, millilitres."""
        return float(4 / 3 * np.pi * np.prod(self.radii) / 1000)


@dataclass(frozen=True)
class Body:
    """An elliptic body outline, lobulated and slowly varying along z, with a subcutaneous fat layer.

    Args:
        a: left-right semi-axis, mm.
        b: anterior-posterior semi-axis, mm.
        fat: thickness of the subcutaneous fat, mm.
        lobes: ``(amplitude, phase)`` of the angular harmonics 2, 3, ... of the outline.
        taper: relative change of the semi-axes along z (amplitude of a slow sine).
        phase: phase of that sine.
    """

    a: float
    b: float
    fat: float
    lobes: tuple[tuple[float, float], ...]
    taper: float
    phase: float

    def distances(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate signed distances (negative inside, mm) to the skin and to the fat/muscle boundary.

        Args:
            x: ``(I, 1, 1)`` or a scalar, mm (patient frame).
            y: ``(1, J, 1)`` or a scalar, mm.
            z: ``(1, 1, K)`` or a scalar, mm.
        """
        u, v = x / self.a, y / self.b
        theta = np.arctan2(v, u)  # the same at every z: the taper scales both semi-axes alike
        radius = 1 + sum(amp * np.cos((k + 2) * theta + ph) for k, (amp, ph) in enumerate(self.lobes))
        rn = np.sqrt(u * u + v * v) / radius / (1 + self.taper * np.sin(z / 150.0 + self.phase))
        mean = (self.a + self.b) / 2
        return (rn - 1) * mean, (rn / (1 - self.fat / mean) - 1) * (mean - self.fat)


@dataclass(frozen=True)
class Anatomy:
    """A patient: body, organs (painted in order, later ones on top), lesions and texture seed.

    Args:
        body: the outline.
        organs: the organs, including the distractors of PET (kidneys, bladder, heart).
        lesions: the lesions (none for a negative patient).
        texture_seed: seed of the patient's soft-tissue texture and visceral fat.
        visceral_fat: fraction of the soft tissue that is visceral fat.
    """

    body: Body
    organs: tuple[Blob, ...]
    lesions: tuple[Blob, ...]
    texture_seed: int
    visceral_fat: float

    def organ(self, name: str) -> Blob:
        """The organ called ``name``."""
        return next(o for o in self.organs if o.name == name)


def plan_body(rng: np.random.Generator) -> Body:
    """A random body outline: 240-300 mm wide, 65-80% as deep, 8-30 mm of subcutaneous fat."""
    a = rng.uniform(120, 150)
    lobes = tuple((float(rng.normal(0, 0.025 / k)), float(rng.uniform(0, 2 * np.pi))) for k in range(2, 6))
    return Body(a, a * rng.uniform(0.65, 0.8), rng.uniform(8, 30), lobes, rng.uniform(0, 0.06), rng.uniform(0, 6.3))


def plan_organs(rng: np.random.Generator, body: Body) -> tuple[Blob, ...]:
    """The organs of a patient, placed relative to the body outline and jittered (centres, sizes, values).

    Values (HU, SUV, MR): lungs (-820, 0.35, 15), heart (40, 2-8, 70), liver (55-65, 1.7-2.5, 70),
    kidneys (28-34, 4-7, 210), bladder (8, 6-15, 900), aorta (40, 1.6, 30), spine (700, 1.5, 200).
    """
    a, b = body.a, body.b

    def jitter(x: float, y: float, z: float) -> tuple[float, float, float]:
        return (x + rng.normal(0, 5), y + rng.normal(0, 4), z + rng.normal(0, 8))

    def size(*radii: float) -> tuple[float, float, float]:
        return tuple(r * rng.uniform(0.88, 1.12) for r in radii)  # type: ignore[return-value]

    lung = (0.33 * a, 0.55 * b, 90.0)
    return (
        Blob("lung_right", jitter(0.5 * a, -0.1 * b, 115), size(*lung), 0.0, (-820.0, 0.35, 15.0)),
        Blob("lung_left", jitter(-0.5 * a, -0.1 * b, 118), size(*lung), 0.0, (-820.0, 0.35, 15.0)),
        Blob("heart", jitter(-0.15 * a, 0.25 * b, 88), size(50, 42, 45), rng.uniform(-0.5, 0.5),
             (40.0, rng.uniform(2, 8), 70.0)),
        Blob("liver", jitter(0.42 * a, 0.05 * b, 25), size(0.42 * a, 0.6 * b, 55), rng.uniform(0, 0.35),
             (rng.uniform(55, 65), rng.uniform(1.7, 2.5), 70.0)),
        Blob("kidney_right", jitter(0.45 * a, -0.45 * b, -15), size(24, 28, 50), rng.uniform(0.1, 0.5),
             (rng.uniform(28, 34), rng.uniform(4, 7), 210.0)),
        Blob("kidney_left", jitter(-0.45 * a, -0.45 * b, -10), size(24, 28, 50), -rng.uniform(0.1, 0.5),
             (rng.uniform(28, 34), rng.uniform(4, 7), 210.0)),
        Blob("bladder", jitter(0, 0.2 * b, -70), size(40, 35, 30), 0.0, (8.0, rng.uniform(6, 15), 900.0)),
        Blob("aorta", (-0.1 * a, -b + 75, 0.0), (11.0, 11.0, 1e4), 0.0, (40.0, 1.6, 30.0)),
        Blob("spine", (0.0, -b + 42, 0.0), (17.0, 15.0, 1e4), 0.0, (700.0, 1.5, 200.0)),
    )  # fmt: skip


def _lesion_fits(anatomy: Anatomy, host: str, centre: np.ndarray, reach: float, taken: list[Blob]) -> bool:
    """Whether a lesion reaching ``reach`` mm from ``centre`` lies in ``host`` and clear of everything else."""
    x, y, z = (np.float64(v) for v in centre)
    if float(anatomy.body.distances(x, y, z)[1]) > -(reach + 5):
        return False
    for organ in anatomy.organs:
        inside = float(organ.distance(x, y, z))
        if organ.name == host:
            if inside > -(reach + 3):
                return False
        elif inside < reach + 8:
            return False
    return all(np.linalg.norm(centre - np.array(o.centre)) > reach + max(o.radii) + 5 for o in taken)


def plan_lesions(rng: np.random.Generator, anatomy: Anatomy, z_limit: float) -> tuple[Blob, ...]:
    """1-4 lesions of radius 6-25 mm (log-uniform) in the liver or in soft tissue, within ``|z| <= z_limit``.

    The smallest (:data:`MIN_LESION_RADIUS_MM`: 12 mm across) spans about twice the PET resolution of centre A
    (FWHM 6.5 mm) and 1.4 times centre B's (8.5 mm; :data:`pathattn.synth.volume_scanner.SCANNERS`): smaller
    lesions lose most of their uptake to the partial-volume effect and are not reliably seen in PET, so a
    study label resting on one would be noise.

    CT: 30-60 HU over the host; PET: SUV 6-24 (log-uniform); MR: 1.6-2.6 times the host. A lesion that does
    not fit after many tries is dropped, but a positive patient always keeps at least one.
    """
    n = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
    lesions: list[Blob] = []
    for _ in range(n):
        host = "liver" if rng.random() < 0.45 else "soft"
        radius = float(np.exp(rng.uniform(np.log(MIN_LESION_RADIUS_MM), np.log(25))))
        for attempt in range(400):
            r = radius if attempt < 300 else MIN_LESION_RADIUS_MM
            radii = tuple(r * rng.uniform(0.8, 1.25) for _ in range(3))
            reach, zmax = max(radii), max(z_limit - max(radii), 0.0)
            if host == "liver":
                liver = anatomy.organ("liver")
                centre = np.array(liver.centre) + rng.uniform(-1, 1, 3) * np.array(liver.radii)
            else:
                centre = rng.uniform(-1, 1, 3) * np.array([anatomy.body.a, anatomy.body.b, 1.0]) * 0.85
            centre[2] = rng.uniform(-zmax, zmax) if host == "soft" else np.clip(centre[2], -zmax, zmax)
            if _lesion_fits(anatomy, host, centre, reach, lesions):
                base = anatomy.organ("liver").values if host == "liver" else SOFT
                values = (base[0] + rng.uniform(30, 60), float(np.exp(rng.uniform(np.log(6), np.log(24)))),
                          base[2] * rng.uniform(1.6, 2.6))  # fmt: skip
                lesions.append(Blob("lesion", tuple(np.round(centre, 2)), radii, rng.uniform(0, np.pi), values, host))
                break
    if not lesions:  # never seen in practice: a smallest lesion at the centre of the liver
        liver = anatomy.organ("liver")
        values = (liver.values[0] + 45, 8.0, 200.0)
        lesions.append(Blob("lesion", liver.centre, (MIN_LESION_RADIUS_MM,) * 3, 0.0, values, "liver"))
    return tuple(lesions)


def _box(axis: np.ndarray, lo: float, hi: float) -> slice:
    """The index range of the (monotonic) coordinates ``axis`` that fall in ``[lo, hi]`` (maybe empty)."""
    idx = np.nonzero((axis >= lo) & (axis <= hi))[0]
    return slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0)


def _blob_box(blob: Blob, x: np.ndarray, y: np.ndarray, z: np.ndarray, pad: float) -> tuple[slice, slice, slice]:
    """The index box of the grid that holds ``blob`` (plus ``pad`` mm)."""
    reach = max(blob.radii[:2]) + pad
    cx, cy, cz = blob.centre
    return (_box(x, cx - reach, cx + reach), _box(y, cy - reach, cy + reach),
            _box(z, cz - blob.radii[2] - pad, cz + blob.radii[2] + pad))  # fmt: skip


def _paint(canvas: dict[str, np.ndarray], box: tuple[slice, ...], occ: np.ndarray, values: dict[str, object]) -> None:
    """Blend ``values`` (a number or an array of the box's shape, per modality) into ``canvas`` by ``occ``."""
    for name, array in canvas.items():
        array[box] += occ * (values[name] - array[box])


def lattice_noise(seed: int, n_fields: int) -> np.ndarray:
    """Smooth noise fields on the patient-frame lattice: ``(n_fields, X, Y, Z)`` float32, unit deviation."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(2 * h / _LATTICE_MM) + 1 for h in _LATTICE_HALF)
    fields = ndimage.gaussian_filter(rng.standard_normal((n_fields, *shape)).astype(np.float32), (0, 1.5, 1.5, 1.5))
    return fields / fields.std(axis=(1, 2, 3), keepdims=True)


def _interpolation_matrix(coords: np.ndarray, size: int) -> np.ndarray:
    """Weights ``(n, size)`` interpolating ``size`` lattice values linearly at ``coords`` (lattice units, clamped)."""
    f = np.clip(coords, 0, size - 1)
    lo = np.minimum(np.floor(f).astype(int), size - 2)
    weights = np.zeros((len(f), size), np.float32)
    weights[np.arange(len(f)), lo] = 1 - (f - lo)
    weights[np.arange(len(f)), lo + 1] = f - lo
    return weights


def _sample_lattice(fields: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``fields`` at the points of the grid ``x (I,) x y (J,) x z (K,)`` (trilinear): ``(n_fields, I, J, K)``."""
    wx, wy, wz = (
        _interpolation_matrix((c + h) / _LATTICE_MM, n)
        for c, h, n in zip((x, y, z), _LATTICE_HALF, fields.shape[1:], strict=True)
    )
    return np.einsum("fxyz,ix,jy,kz->fijk", fields, wx, wy, wz, optimize=True)


def _ramp(distance: np.ndarray, edge: float) -> np.ndarray:
    """Occupancy from a signed distance: 1 inside, 0 outside, linear over ``edge`` mm (anti-aliased edges)."""
    return np.clip(0.5 - distance / np.float32(edge), 0.0, 1.0).astype(np.float32, copy=False)


def _paint_body(
    canvas: dict[str, np.ndarray], anatomy: Anatomy, axes: tuple[np.ndarray, ...], edge: float
) -> np.ndarray:
    """Paint the table, the subcutaneous fat and the textured soft tissue; return the soft-tissue occupancy."""
    x, y, z = axes
    xx, yy, zz = x[:, None, None], y[None, :, None], z[None, None, :]
    table = np.maximum(np.abs(yy + 1.1 * anatomy.body.b + 8) - 4, np.abs(xx) - 190)
    _paint(canvas, (slice(None),) * 3, _ramp(table, edge), dict(zip(MODALITIES, TABLE, strict=True)))
    skin, fascia = anatomy.body.distances(xx, yy, zz)
    _paint(canvas, (slice(None),) * 3, _ramp(skin, edge), dict(zip(MODALITIES, FAT, strict=True)))
    del skin
    inner = _ramp(fascia, edge)
    del fascia
    noise = _sample_lattice(lattice_noise(anatomy.texture_seed, 2), x, y, z[SUBSLICES // 2 :: SUBSLICES])
    visceral = 1 / (1 + np.exp(-(noise[1] - np.quantile(noise[1], 1 - anatomy.visceral_fat)) / 0.15))
    thick = (len(x), len(y), len(z) // SUBSLICES, SUBSLICES)  # soft-tissue values vary per slice, not per thin slice
    occ = inner.reshape(thick)
    for i, name in enumerate(MODALITIES):
        if name in canvas:
            value = SOFT[i] + (FAT[i] - SOFT[i]) * visceral + (6 * noise[0] if name == "ct" else 0)
            array = canvas[name].reshape(thick)
            array += occ * (value[..., None] - array)
    return inner


def paint_anatomy(
    anatomy: Anatomy, grid: Grid, offset: np.ndarray, modalities: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The noiseless tissue values of each modality on ``grid``, rendered on thin slices: ``(I, J, K * SUBSLICES)``."""
    x, y, z = (a.astype(np.float32) for a in grid.axes_ras(offset, SUBSLICES))
    edge = max(0.5 * grid.spacing[0], 0.75)
    canvas = {m: np.full((len(x), len(y), len(z)), AIR[MODALITIES.index(m)], np.float32) for m in modalities}
    inner = _paint_body(canvas, anatomy, (x, y, z), edge)
    xx, yy, zz = x[:, None, None], y[None, :, None], z[None, None, :]
    for blob in (*anatomy.organs, *anatomy.lesions):
        box = _blob_box(blob, x, y, z, edge)
        occ = _ramp(blob.distance(xx[box[0]], yy[:, box[1]], zz[..., box[2]]), edge) * inner[box]
        _paint(canvas, box, occ, dict(zip(MODALITIES, blob.values, strict=True)))
    return canvas


def lesion_label(lesions: tuple[Blob, ...], grid: Grid, offset: np.ndarray) -> tuple[np.ndarray, int]:
    """The label volume ``(I, J, K)`` int16 (1 where a voxel centre is inside a lesion) and the lesions seen.

    A lesion smaller than a voxel whose centre lies in the grid labels the voxel nearest to its centre, so
    every lesion in the field of view appears in the label.
    """
    x, y, z = grid.axes_ras(offset)
    label, seen = np.zeros(grid.shape, np.int16), 0
    for blob in lesions:
        box = _blob_box(blob, x, y, z, 0.0)
        inside = blob.distance(x[box[0], None, None], y[None, box[1], None], z[None, None, box[2]]) <= 0
        label[box][inside] = 1
        if not inside.any():
            idx = [int(np.argmin(np.abs(axis - c))) for axis, c in zip((x, y, z), blob.centre, strict=True)]
            steps = np.array(grid.spacing)
            near = np.abs(np.array([x[idx[0]], y[idx[1]], z[idx[2]]]) - np.array(blob.centre)) <= steps / 2 + 1e-6
            if not near.all():
                continue
            label[tuple(idx)] = 1
        seen += 1
    return label, seen
