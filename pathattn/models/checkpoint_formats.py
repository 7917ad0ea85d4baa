"""The checkpoint formats :func:`pathattn.models.trained.load_trained` reads (free of heavy imports, for the CLI)."""

from __future__ import annotations

from typing import Literal

CheckpointFormat = Literal["auto", "pathattn", "hippo", "clam_sb"]
CHECKPOINT_FORMATS: tuple[CheckpointFormat, ...] = ("auto", "pathattn", "hippo", "clam_sb")
