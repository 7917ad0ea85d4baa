"""Synthetic data: H&E-like whole-slide images with tumor ground truth (the embedded demo/test cohort).

``pathattn.synth.wsi.generate_cohort`` writes a cohort of pyramidal TIFF slides, QuPath GeoJSON tumor
annotations and a ``samples.csv``; ``pathattn.synth.tissue`` holds the stain-space rendering primitives.
"""
