"""Volumes made ready to cut into slices or 3-D patches: resampling, intensity presets, foreground.

Stage-neutral: ``tile`` plans its grids on a prepared volume and ``extract`` reads its voxels from one.
"""
