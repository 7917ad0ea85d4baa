"""``pathattn report``: one self-contained HTML file of a study's results (cohort, metrics, curves, heatmaps)."""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "write a self-contained HTML report of a results folder (cohort, metrics with CIs, curves, heatmaps)"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``report`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--run", type=str, required=True,
                   help="a study's results folder (tiles/, features/, train/, predict/, heatmaps/) or a "
                        "'pathattn train' run folder")  # fmt: skip
    p.add_argument("--out", type=str | None, default=None, help="the HTML file (default: RUN/report.html)")
    p.add_argument("--samples", type=str | None, default=None,
                   help="sample sheet (default: the one recorded in metrics.json, when it still exists)")  # fmt: skip
    p.add_argument("--annotations", type=str | None, default=None,
                   help="folder of ground-truth tumor annotations {slide_id}.geojson (QuPath GeoJSON)")  # fmt: skip
    p.add_argument("--title", type=str | None, default=None, help="heading of the report")
    p.add_argument("--max-slides", type=int, default=50, help="most slides whose heatmaps are shown")
    subcommands.add_subcommand("report", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Write the report and print its path."""
    from pathlib import Path

    from pathattn.report.html import write_report
    from pathattn.report.inputs import load_inputs

    inputs = load_inputs(cfg.run, cfg.samples, cfg.annotations, cfg.max_slides)
    path = write_report(inputs, cfg.out or Path(cfg.run) / "report.html", cfg.title)
    print(path)
    return 0
