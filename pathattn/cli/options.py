"""Options several commands share, defined once so that they read the same everywhere."""

from __future__ import annotations

from jsonargparse import ArgumentParser

from pathattn.models.checkpoint_formats import CHECKPOINT_FORMATS

CHECKPOINT_HELP = "a .ckpt of 'pathattn train' (RUN/fold_k/checkpoints), or a HIPPO or CLAM-SB state dict"
RUN_HELP = "instead of --checkpoint: a 'pathattn train' run folder, each of its slides with its out-of-fold model"


def add_model_options(p: ArgumentParser, checkpoint_help: str = CHECKPOINT_HELP + ", for every slide",
                      run: bool = True) -> None:  # fmt: skip
    """``--checkpoint`` (and ``--run``), ``--checkpoint-format`` and ``--device``: the trained model a command uses.

    Args:
        p: the command's parser.
        checkpoint_help: what ``--checkpoint`` is for in this command.
        run: whether the command also takes a ``pathattn train`` run folder (``--run``).
    """
    p.add_argument("--checkpoint", type=str | None, default=None, help=checkpoint_help)
    if run:
        p.add_argument("--run", type=str | None, default=None, help=RUN_HELP)
    p.add_argument("--checkpoint-format", type=str, default="auto", choices=list(CHECKPOINT_FORMATS),
                   help="auto (detected from the file), pathattn, hippo (HIPPO AttentionMILModel state dict) "
                        "or clam_sb (CLAM's s_{fold}_checkpoint.pt)")  # fmt: skip
    p.add_argument("--device", type=str, default="cpu", help="where the model runs: cpu, cuda[:i] or auto")
