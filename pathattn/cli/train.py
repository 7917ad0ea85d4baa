"""``pathattn train``: patient-level cross-validation of an attention-MIL model on slide-level labels.

Every field of :class:`pathattn.train.mil.config.TrainConfig` is a dashed option (``--n-folds``, boolean
ones bare flags: ``--skip-missing``, ``--no-deterministic``) and a YAML key (``n_folds``); several
``--config`` files compose (one concern each: ``configs/model/``, ``configs/data/``, ``configs/trainer/``),
and ``--print-config`` shows the resolved configuration with every default. ``--strategy ddp --devices N``
trains each fold on N processes: Lightning re-runs this command once per extra process, and only global
rank 0 writes the run's files and prints the summary.
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "cross-validate an attention-MIL model (ABMIL, ACMIL, CLAM-SB, ...) on slide labels or survival"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``train`` parser."""
    from pathattn.cli.options import add_dataclass_options
    from pathattn.train.mil.config import TrainConfig

    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML files with any of these options (see configs/)")
    add_dataclass_options(p, TrainConfig)
    subcommands.add_subcommand("train", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Train every fold and print where the metrics are (on global rank 0)."""
    import sys

    from pathattn.train.mil.config import TrainConfig
    from pathattn.train.mil.crossval import train_cv

    values = {k: v for k, v in cfg.as_dict().items() if k != "config"}
    config = TrainConfig(**values)
    result = train_cv(config)
    if result is None:  # another process of a DDP run
        return 0
    summary = result["summary"]
    main_metric = "auroc" if config.task == "classification" else "c_index"
    stat = summary.get(main_metric, {})
    mean, std = stat.get("mean", float("nan")), stat.get("std", float("nan"))
    print(f"train: {config.model}, {len(result['folds'])} folds, {main_metric} {mean:.3f} ± {std:.3f}; "
          f"metrics: {config.out / 'metrics.json'}", file=sys.stderr)  # fmt: skip
    return 0
