"""The scanners of the two centres of ``pathattn synth volume``: voxel grids and image formation.

A :class:`Scanner` holds a centre's characteristics (in-plane spacing through its field of view, slice
thickness, CT noise and offset, point spread, PET resolution and noise, MR scale and noise). Its :class:`Grid`
is stored as DICOM/ITK store it (axcodes LPS). The anatomy is painted on thin slices
(:func:`pathattn.synth.volume_anatomy.paint_anatomy`) and turned into a CT (HU), a PET (SUVbw, on a grid twice
as coarse in-plane) and a T2-like MR (arbitrary units) by :func:`ct_image`, :func:`pet_image` and :func:`mr_image`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SUBSLICES = 3  # each slice is painted as this many thin slices and averaged (partial volume along z)


@dataclass(frozen=True)
class Scanner:
    """The imaging characteristics of one centre.

    Args:
        centre: the centre's name (``A`` or ``B``).
        fov_mm: in-plane field of view along i; the in-plane spacing is ``fov_mm / I``.
        thickness_mm: slice thickness and spacing along k.
        ct_noise_hu: standard deviation of the CT noise, HU.
        ct_offset_hu: calibration offset added to every CT value, HU.
        blur_mm: standard deviation of the in-plane CT/MR point spread, mm.
        pet_fwhm_mm: PET resolution (full width at half maximum), mm.
        pet_noise: relative PET noise at SUV 1 (grows with the square root of the SUV).
        suv_scale: PET calibration factor.
        mr_scale: MR intensity scale (arbitrary units differ between scanners).
        mr_noise: standard deviation of the MR (Rician) noise before ``mr_scale`` (soft tissue: 110).
        model: the scanner model written to DICOM.
    """

    centre: str
    fov_mm: float
    thickness_mm: float
    ct_noise_hu: float
    ct_offset_hu: float
    blur_mm: float
    pet_fwhm_mm: float
    pet_noise: float
    suv_scale: float
    mr_scale: float
    mr_noise: float
    model: str


# In-plane spacing = FOV / I: 3.6 vs 4.8 mm at the default 96 px, 0.9 vs 1.2 mm at 384 px.
SCANNERS = {
    "A": Scanner("A", 345.6, 3.0, 12.0, 0.0, 1.0, 6.5, 0.10, 1.00, 1.0, 3.5, "SynthCT 64"),
    "B": Scanner("B", 460.8, 5.0, 20.0, 6.0, 1.6, 8.5, 0.15, 1.06, 1.8, 5.5, "SynthCT 16"),
}


@dataclass(frozen=True)
class Grid:
    """A voxel grid stored as DICOM/ITK store it: index i towards L, j towards P, k towards S (axcodes LPS).

    Args:
        shape: ``(I, J, K)`` voxels.
        spacing: ``(si, sj, sk)`` mm.
        origin_lps: LPS millimetres of the centre of voxel (0, 0, 0) (the ImagePositionPatient of slice 0).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin_lps: tuple[float, float, float]

    @classmethod
    def of_scanner(cls, scanner: Scanner, shape: tuple[int, int, int], table_z: float) -> Grid:
        """The CT grid of ``scanner``: centred in-plane on the isocentre and along k on ``table_z`` (mm)."""
        s, t = round(scanner.fov_mm / shape[0], 4), scanner.thickness_mm
        origin = (-(shape[0] - 1) / 2 * s, -(shape[1] - 1) / 2 * s, table_z - (shape[2] - 1) / 2 * t)
        return cls(shape, (s, s, t), tuple(round(v, 3) for v in origin))  # type: ignore[arg-type]

    def coarsened(self, factor: int = 2) -> Grid:
        """The grid whose voxels are ``factor`` x ``factor`` in-plane blocks of this one (the PET grid)."""
        s = self.spacing
        origin = (self.origin_lps[0] + (factor - 1) / 2 * s[0], self.origin_lps[1] + (factor - 1) / 2 * s[1])
        shape = (self.shape[0] // factor, self.shape[1] // factor, self.shape[2])
        return Grid(shape, (s[0] * factor, s[1] * factor, s[2]), (*origin, self.origin_lps[2]))

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel (i, j, k, 1) to RAS millimetres, the nibabel convention (axcodes LPS)."""
        (si, sj, sk), (ox, oy, oz) = self.spacing, self.origin_lps
        return np.array([[-si, 0, 0, -ox], [0, -sj, 0, -oy], [0, 0, sk, oz], [0, 0, 0, 1]], np.float64)

    def axes_ras(self, offset: np.ndarray, sub: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RAS coordinates of the voxel centres along i, j and k, in the frame whose origin is ``offset``.

        Args:
            offset: ``(3,)`` RAS world position of the frame's origin (the patient's), mm.
            sub: points per voxel along k (``sub`` evenly spaced thin slices across each slice).

        Returns:
            ``x (I,)``, ``y (J,)``, ``z (K * sub,)`` in mm.
        """
        (si, sj, sk), (ox, oy, oz) = self.spacing, self.origin_lps
        x = -(ox + si * np.arange(self.shape[0])) - offset[0]
        y = -(oy + sj * np.arange(self.shape[1])) - offset[1]
        thin = (np.arange(sub) - (sub - 1) / 2) / sub
        z = (oz + sk * (np.arange(self.shape[2])[:, None] + thin[None, :])).ravel() - offset[2]
        return x, y, z


def _thick_slices(painted: np.ndarray) -> np.ndarray:
    """Average the thin slices of :func:`paint_anatomy` into slices: ``(I, J, K)`` float32."""
    return painted.reshape(*painted.shape[:2], -1, SUBSLICES).mean(axis=3, dtype=np.float32)


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Spatially correlated Gaussian noise of unit standard deviation, float32."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def ct_image(painted: np.ndarray, grid: Grid, scanner: Scanner, rng: np.random.Generator) -> np.ndarray:
    """CT in HU ``(I, J, K)`` int16: partial-volume blur, correlated noise, the centre's offset, clipped to 12 bits."""
    sigma = scanner.blur_mm / grid.spacing[0]
    hu = ndimage.gaussian_filter(_thick_slices(painted), (sigma, sigma, 0))
    hu += scanner.ct_noise_hu * _unit_noise(rng, hu.shape, (0.6, 0.6, 0)) + scanner.ct_offset_hu
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def pet_image(painted: np.ndarray, grid: Grid, scanner: Scanner, rng: np.random.Generator) -> np.ndarray:
    """PET in SUVbw on ``grid.coarsened(2)`` ``(I // 2, J // 2, K)`` float32: PSF blur, 2 x 2 binning, noise."""
    sigma = [scanner.pet_fwhm_mm / 2.3548 / s for s in grid.spacing]
    suv = ndimage.gaussian_filter(_thick_slices(painted), sigma)
    i2, j2, k = grid.shape[0] // 2, grid.shape[1] // 2, grid.shape[2]
    suv = suv[: 2 * i2, : 2 * j2].reshape(i2, 2, j2, 2, k).mean(axis=(1, 3))
    suv += scanner.pet_noise * np.sqrt(np.maximum(suv, 0.05)) * _unit_noise(rng, suv.shape, (0.7, 0.7, 0.5))
    return (np.maximum(suv, 0) * scanner.suv_scale).astype(np.float32)


def mr_image(
    painted: np.ndarray, grid: Grid, scanner: Scanner, offset: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """T2-like MR ``(I, J, K)`` float32 (arbitrary units): blur, a smooth multiplicative bias field, Rician noise."""
    sigma = scanner.blur_mm / grid.spacing[0]
    mr = ndimage.gaussian_filter(_thick_slices(painted), (sigma, sigma, 0))
    x, y, z = (c / 200.0 for c in grid.axes_ras(offset))
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
    c = rng.normal(0, 0.12, 9)
    bias = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z + c[6] * x * y
    mr *= np.exp(bias + c[7] * x * z + c[8] * y * z).astype(np.float32)
    noise = scanner.mr_noise
    real = mr + noise * rng.standard_normal(mr.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(mr.shape, dtype=np.float32)
    return (np.sqrt(real * real + imag * imag) * scanner.mr_scale).astype(np.float32)
