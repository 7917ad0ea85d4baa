"""Stage ``segment``: attention-gated segmentation of volumes (docs/segment.md).

:mod:`~pathattn.segment.data` reads the cases of a volume sample sheet (images and label volumes, prepared as the
tiling prepares them) and holds the MONAI dictionary transforms of training and validation.
"""
