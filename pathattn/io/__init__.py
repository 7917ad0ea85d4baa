"""Shared input/output: slides, atomic writes, GeoJSON and HDF5 stores."""
