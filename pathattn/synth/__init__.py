"""Synthetic data: H&E-like whole-slide images and CT/PET/MR volumes with ground truth (demo/test cohorts).

``pathattn.synth.wsi.generate_cohort`` writes a cohort of pyramidal TIFF slides, QuPath GeoJSON tumor
annotations and a ``samples.csv``; ``pathattn.synth.tissue`` holds the stain-space rendering primitives.
``pathattn.synth.volume.generate_volume_cohort`` writes CT / PET / MR volumes (NIfTI and DICOM) with lesion
labels and a ``samples.csv`` (``pathattn.synth.volume_anatomy``, ``volume_scanner``, ``volume_dicom``).
"""
