"""Entry point of the ``pathattn`` command.

Each command lives in ``pathattn.cli.<name>`` and exposes two functions:

* ``register(subcommands)`` adds its parser (a jsonargparse ``ArgumentParser``, so ``--config FILE.yaml``
  and ``--print_config`` work for every command);
* ``run(cfg) -> int`` executes it with the parsed namespace of that command and returns the exit code.

Heavy libraries are imported inside ``run`` so that ``pathattn --help`` stays fast.
User errors (:class:`~pathattn.errors.PathattnError`, bad options) print one line and exit 2; anything
unexpected prints one line too (set ``PATHATTN_DEBUG=1`` for the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from jsonargparse import ArgumentParser

from pathattn import __version__
from pathattn.errors import PathattnError

COMMANDS = ("tile", "extract", "train", "predict", "heatmap", "explain", "evaluate", "report", "synth", "demo")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def build_parser() -> ArgumentParser:
    """The ``pathattn`` parser with every command registered."""
    parser = ArgumentParser(
        prog="pathattn",
        description="Attention-based, weakly supervised medical imaging pipelines.",
        exit_on_error=False,
    )
    parser.add_argument("--version", action="version", version=f"pathattn {__version__}")
    subcommands = parser.add_subcommands(dest="command", title="commands")
    for name in COMMANDS:
        importlib.import_module(f"pathattn.cli.{name}").register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pathattn`` with ``argv`` (default: the process arguments); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), "")
    try:
        cfg = build_parser().parse_args(argv)
        module = importlib.import_module(f"pathattn.cli.{cfg.command}")
        return int(module.run(cfg[cfg.command]) or 0)
    except PathattnError as err:
        print(f"pathattn {command}: error: {err}", file=sys.stderr)
        return 2
    except argparse.ArgumentError as err:
        hint = f"see 'pathattn {command} --help'" if command in COMMANDS else "see 'pathattn --help'"
        print(f"pathattn: error: {_one_line(err)} ({hint})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pathattn: interrupted; finished outputs are kept, re-run to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("PATHATTN_DEBUG"):
            raise
        print(
            f"pathattn: internal error: {type(err).__name__}: {_one_line(err)} "
            "(set PATHATTN_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
