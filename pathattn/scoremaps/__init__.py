"""Score maps: per-patch scores of a slide turned into normalised values, rasters and images.

Shared by every stage that draws or measures where a model looks (``heatmap``, ``explain``, ``evaluate``,
``report``), so none of them depends on another's internals:

* :mod:`~pathattn.scoremaps.normalise`: per-slide normalisation of patch scores to [0, 1];
* :mod:`~pathattn.scoremaps.rasters`: patch values painted on an image of the slide (overlaps averaged),
  per-patch maps stitched, polygons rasterised as masks;
* :mod:`~pathattn.scoremaps.render`: colour maps blended over a thumbnail, legends and banners, outlines of
  polygons and patches;
* :mod:`~pathattn.scoremaps.images`: the thumbnail resolution, PNG files read and written;
* :mod:`~pathattn.scoremaps.wsol`: the weakly supervised localization metrics (PxAP, MaxBoxAcc, ...) of any
  score map against a mask (``evaluate`` and ``segment`` score maps with them).
"""
