"""Stage ``explain``: attention heatmaps now; counterfactuals (HIPPO-style) and attributions later."""
