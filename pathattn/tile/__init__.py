"""Stage ``tile``: whole-slide images into patch grids in physical units.

``tissue`` finds tissue on a low-resolution image, ``grid`` lays patches at a target µm/px and measures
their tissue and annotation coverage, ``qc`` draws the control image, and ``run`` tiles one slide or a
resumable batch. The command is ``pathattn tile``.
"""
