"""Stage ``explain``: attention heatmaps, counterfactual explanations (HIPPO-style) and attributions.

Counterfactuals: :class:`~pathattn.explain.engine.Explainer` (operations and greedy searches on one slide, over
the cached or the generic back end), :mod:`~pathattn.explain.cohort` (attention against effect across slides),
:mod:`~pathattn.explain.attributions` (captum), :mod:`~pathattn.explain.hippo_compat` (hippo-nn's semantics)
and :mod:`~pathattn.explain.run` (the batch job of ``pathattn explain``). Heatmaps: :mod:`~pathattn.explain.heatmap`.
"""
