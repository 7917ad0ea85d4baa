"""Building blocks shared by the model families."""

from pathattn.models.layers.attention import AttentionScorer
from pathattn.models.layers.attention_gate import GridAttentionGate

__all__ = ["AttentionScorer", "GridAttentionGate"]
