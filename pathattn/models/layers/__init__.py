"""Building blocks shared by the model families."""

from pathattn.models.layers.attention import AttentionScorer

__all__ = ["AttentionScorer"]
