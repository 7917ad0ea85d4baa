"""NIfTI files written the way every pathattn command writes them: atomic, reproducible bytes, both transforms set."""

from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np

from pathattn.io.atomic import atomic_path


def write_nifti(path: str | os.PathLike[str], array: np.ndarray, affine: np.ndarray, description: str = "") -> None:
    """Write a ``.nii.gz`` atomically, with sform and qform (code 1, scanner), mm units and no gzip time stamp.

    Args:
        path: the file to write.
        array: (I, J, K) voxel values, stored in their dtype.
        affine: (4, 4) voxel → RAS mm (any orientation: the array is stored as it is).
        description: the header's ``descrip`` (ASCII, at most 79 characters kept).
    """
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = description.encode("ascii")[:79]
    data = gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
