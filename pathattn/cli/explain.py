"""``pathattn explain``: counterfactual explanations (HIPPO-style), attributions and cohort-level tests.

``--checkpoint`` explains every slide with one model; ``--run`` explains each slide of a cross-validation run
with the checkpoint of the fold that tested it. Outputs and the JSON schema: docs/explain.md.
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "counterfactual explanations: greedy HIPPO searches, removal/insertion effects, attributions, cohort tests"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``explain`` parser."""
    from pathattn.cli.options import add_model_options
    from pathattn.explain.options import BACKENDS, METHODS, OBJECTIVES, OPTIMIZERS

    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    add_model_options(p)
    p.add_argument("--features", type=str, required=True, help="folder of feature files ('pathattn extract' output)")
    p.add_argument("--out", type=str, required=True, help="output folder (slides/, figures/, summary.csv, ...)")
    p.add_argument("--samples", type=str | None, default=None,
                   help="sample sheet: labels for the summary, slide_path for the thumbnails")  # fmt: skip
    p.add_argument("--slide-ids", type=str | None, default=None, nargs="+",
                   help="slides to explain (default: every feature file, or every slide of --run)")  # fmt: skip
    p.add_argument("--method", type=str | None, default=None, nargs="+", choices=list(METHODS),
                   help="what to compute (default: compare search, plus region with --annotations and insertion "
                        "with --donors)")  # fmt: skip
    p.add_argument("--annotations", type=str | None, default=None,
                   help="folder of {slide_id}.geojson regions (e.g. tumor), level-0 pixels")  # fmt: skip
    p.add_argument("--annotation-classes", type=str | None, default=None, nargs="+",
                   help="region classes that count (default: every class)")  # fmt: skip
    p.add_argument("--min-overlap", type=float, default=0.0,
                   help="share of a patch inside a region to count as in it (0: any overlap)")  # fmt: skip
    p.add_argument("--donors", type=str | None, default=None, nargs="+",
                   help="slides whose patches (their annotated region, if any) are added to the others")  # fmt: skip
    p.add_argument("--objective", type=str, default="log_odds", choices=list(OBJECTIVES),
                   help="what the searches optimise (risk for survival models)")  # fmt: skip
    p.add_argument("--target", type=str, default="predicted", help="class explained: predicted, or a class name")
    p.add_argument("--positive-class", type=str | None, default=None,
                   help="class counted as positive for flags and insertion (default: the last class)")  # fmt: skip
    p.add_argument("--optimizer", type=str, default="minimize", choices=list(OPTIMIZERS), help="the search's optimizer")
    p.add_argument("--fraction", type=float, default=0.05, help="share of patches in the compared sets and the search")
    p.add_argument("--rounds", type=int | None, default=None, help="search rounds instead of --fraction")
    p.add_argument("--stop-on-flip", action="store_true", help="end the searches when the decision flips")
    p.add_argument("--risk-threshold", type=float | None, default=None, help="survival: decision risk > threshold")
    p.add_argument("--n-random", type=int, default=20, help="random sets per slide (the baseline)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sets")
    p.add_argument("--insert-rounds", type=int, default=10, help="most donor patches the insertion search adds")
    p.add_argument("--small-tumor", type=float, default=0.1, help="largest share of patches of a 'small' tumor")
    p.add_argument("--ig-steps", type=int, default=32, help="integration steps of integrated gradients")
    p.add_argument("--hippo-compat", action="store_true",
                   help="run the search with hippo-nn's semantics (float32 probability, its ties)")  # fmt: skip
    p.add_argument("--backend", type=str, default="auto", choices=list(BACKENDS),
                   help="cached: instance-separable models (ABMIL, CLAM-SB, ACMIL, mean pooling)")  # fmt: skip
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--overwrite", action="store_true", help="redo slides whose records exist")
    subcommands.add_subcommand("explain", p, help=HELP)


def _methods(cfg: Namespace) -> tuple[str, ...]:
    if cfg.method:
        return tuple(dict.fromkeys(cfg.method))
    return ("compare", "search") + (("region",) if cfg.annotations else ()) + (("insertion",) if cfg.donors else ())


def job_from(cfg: Namespace):  # noqa: ANN201 - ExplainJob, imported lazily
    """The :class:`~pathattn.explain.run.ExplainJob` of parsed options."""
    from pathlib import Path

    from pathattn.devices import resolve_device
    from pathattn.explain.run import ExplainJob
    from pathattn.explain.slide import SlideSettings

    settings = SlideSettings(
        methods=_methods(cfg), objective=cfg.objective, target=cfg.target, positive_class=cfg.positive_class,
        optimizer=cfg.optimizer, fraction=cfg.fraction, rounds=cfg.rounds, stop_on_flip=cfg.stop_on_flip,
        risk_threshold=cfg.risk_threshold, n_random=cfg.n_random, seed=cfg.seed, insert_rounds=cfg.insert_rounds,
        small_tumor=cfg.small_tumor, ig_steps=cfg.ig_steps, hippo_compat=cfg.hippo_compat,
    )  # fmt: skip
    optional = {name: Path(getattr(cfg, name)) if getattr(cfg, name) else None
                for name in ("checkpoint", "run", "samples", "annotations")}  # fmt: skip
    return ExplainJob(
        Path(cfg.features), Path(cfg.out), **optional, slide_ids=cfg.slide_ids,
        annotation_classes=cfg.annotation_classes, min_overlap=cfg.min_overlap, donors=tuple(cfg.donors or ()),
        backend=cfg.backend, device=str(resolve_device(cfg.device)), checkpoint_format=cfg.checkpoint_format,
        figures=not cfg.no_figures,
        overwrite=cfg.overwrite, settings=settings,
    )  # fmt: skip


def run(cfg: Namespace) -> int:
    """Explain the slides; exit 1 if any slide failed."""
    from pathattn.explain.run import run_explain

    return run_explain(job_from(cfg))
