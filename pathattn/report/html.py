"""The report page: the sections rendered into one self-contained HTML file (styles inline, images as data URIs).

Templates are Jinja2 sources held here (the page and the ``table`` macro) and in
:mod:`pathattn.report.sections` (each section's body); every value is HTML-escaped.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup

from pathattn import __version__
from pathattn.errors import PathattnError
from pathattn.io.atomic import write_text_atomic
from pathattn.report.inputs import STAGES, ReportInputs
from pathattn.report.sections import Section, build_sections

MACROS = """\
{% macro table(headers, rows, kind="") -%}
<div class="scroll"><table class="{{ kind }}"><thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
</thead><tbody>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{%- endmacro %}
"""

PAGE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; color: #222; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; margin-top: 36px; } h3 { margin: 18px 0 6px; }
nav a { margin-right: 14px; } .meta, .note { color: #666; } .notes { background: #fff6d6; padding: 8px 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
.scroll { max-height: 520px; overflow: auto; margin: 8px 0; }
img.figure { max-width: 100%; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; max-width: calc(50% - 8px); } figure img { max-width: 100%; display: block; }
figcaption { color: #555; font-size: 13px; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ run }} &middot; generated {{ generated }} by pathattn {{ version }}</p>
{% if notes %}<div class="notes">{% for note in notes %}<p>{{ note }}</p>{% endfor %}</div>{% endif %}
<nav>{% for s in sections %}<a href="#{{ s.key }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in sections %}<section id="{{ s.key }}"><h2>{{ s.title }}</h2>
{{ bodies[loop.index0] }}</section>
{% endfor %}
</body></html>
"""


def _environment() -> Environment:
    return Environment(loader=DictLoader({"macros": MACROS, "page": PAGE}), autoescape=True, undefined=StrictUndefined)


def render_sections(sections: list[Section], inputs: ReportInputs, title: str) -> str:
    """The HTML page of ``sections``.

    Args:
        sections: what the page shows, in order.
        inputs: the results read (for the run folder and the notes).
        title: the page heading.
    """
    env = _environment()
    bodies = [Markup(env.from_string(s.template).render(data=s.data)) for s in sections]  # escaped by Jinja2
    return env.get_template("page").render(
        title=title,
        run=str(inputs.layout.root.resolve()),
        generated=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__,
        notes=inputs.notes,
        sections=sections,
        bodies=bodies,
    )


def write_report(inputs: ReportInputs, out: str | os.PathLike[str], title: str | None = None) -> Path:
    """Build every section whose inputs exist and write the report (atomically).

    Args:
        inputs: the results read by :func:`~pathattn.report.inputs.load_inputs`.
        out: the HTML file.
        title: the page heading (default: ``pathattn report: <run folder name>``).

    Returns:
        The path written.

    Raises:
        PathattnError: ``out`` is a folder or cannot be written, or no section has its inputs (nothing to report).
    """
    out = Path(out)
    if out.is_dir():
        raise PathattnError(f"--out {out} is a folder; pass the HTML file to write (e.g. {out / 'report.html'})")
    sections = build_sections(inputs)
    if not sections:
        raise PathattnError(
            f"--run {inputs.layout.root} has nothing to report yet (no metrics.json, predictions, manifests or "
            f"heatmaps in {', '.join(s + '/' for s in STAGES)}); run the pipeline first"
        )
    html = render_sections(sections, inputs, title or f"pathattn report: {inputs.layout.root.resolve().name}")
    try:
        write_text_atomic(out, html)
    except OSError as err:
        raise PathattnError(
            f"--out {out} cannot be written ({err.strerror or type(err).__name__}); pass a file in a folder you can "
            "write"
        ) from None
    return out
