"""Entry point of the ``pathattn`` command.

Each command lives in ``pathattn.cli.<name>`` and exposes two functions:

* ``register(subcommands)`` adds its parser (a jsonargparse ``ArgumentParser``, so ``--config FILE.yaml``
  and ``--print-config`` work for every command);
* ``run(cfg) -> int`` executes it with the parsed namespace of that command and returns the exit code.

Every command follows one convention (:mod:`pathattn.cli.options`): dashed options, bare boolean flags,
YAML keys with ``_`` for ``-``. Heavy libraries are imported inside ``run`` so that ``pathattn --help``
stays fast. User errors (:class:`~pathattn.errors.PathattnError`, bad options, a ``--config`` file that is
not YAML, a path that cannot be read or written) print one line naming the option or path and exit 2;
anything unexpected prints one line too (set ``PATHATTN_DEBUG=1`` for the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ArgumentParser

from pathattn import __version__
from pathattn.cli.options import option_name, type_words, use_conventions
from pathattn.errors import PathattnError

COMMANDS = (
    "tile", "extract", "bags", "train", "classify", "segment", "predict", "heatmap", "explain", "cams", "evaluate",
    "report", "synth", "demo",
)  # fmt: skip
_PARSER_KEY = re.compile(r'^Parser key "([\w.]+)":')
_BAD_VALUE = re.compile(r'^Parser key "([\w.]+)":.*?(?:Got value|Given value): (.*)$')
_REQUIRED = re.compile(r"^the following arguments are required: (.*)$")
_UNDERSCORED = re.compile(r"(?<!\S)--[a-z0-9]+_[\w]+")


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
    use_conventions(parser)
    return parser


def _find_action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action | None:
    """The action of ``parser`` or of a subcommand under it whose destination is ``dest``."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its actions here only
        if action.dest == dest:
            return action
        for subparser in getattr(action, "_name_parser_map", {}).values():
            if found := _find_action(subparser, dest):
                return found
    return None


def _argument_message(err: argparse.ArgumentError, parser: ArgumentParser | None, argv: Sequence[str]) -> str:
    """jsonargparse's message about a bad option, naming the option as the user types it."""
    text = _one_line(err)
    if bad := _BAD_VALUE.match(text):
        key, value = bad.groups()
        action = _find_action(parser, key.rsplit(".", 1)[-1]) if parser else None
        hint = getattr(action, "_typehint", None) or getattr(action, "type", None)
        option = option_name(key)
        where = option if any(a == option or a.startswith(option + "=") for a in argv) else f"{key} of a --config file"
        return f"{where} expects {type_words(hint) if hint else 'another value'}, not '{value}'"
    if missing := _REQUIRED.match(text):
        return "missing " + ", ".join(option_name(name) for name in missing.group(1).split(", "))
    if text.startswith("Problems parsing config"):
        return _yaml_error(argv) or text
    text = _PARSER_KEY.sub(lambda key: option_name(key.group(1)) + ":", text)
    dashed = [option.replace("_", "-") for option in _UNDERSCORED.findall(text)]
    return text + (f" (options are written with dashes: {', '.join(dashed)})" if dashed else "")


def _yaml_error(argv: Sequence[str]) -> str | None:
    """Where the first ``--config`` file of ``argv`` that is not valid YAML breaks, in one line."""
    import yaml

    files = [b for a, b in zip(argv, argv[1:], strict=False) if a == "--config"]
    files += [a.removeprefix("--config=") for a in argv if a.startswith("--config=")]
    for file in files:
        try:
            yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            return (f"--config {file}: not valid YAML at line {mark.line + 1}, column {mark.column + 1} "
                    f"({_one_line(error.problem)}); fix the file")  # fmt: skip
        except (OSError, yaml.YAMLError):
            continue
    return None


def _path_message(err: OSError) -> str | None:
    """One line naming the path an operating-system error is about and the fix; None for other errors."""
    path = err.filename
    if path is None:
        return None
    if isinstance(err, PermissionError):
        return f"permission denied: {path}; give yourself access to it or choose another path"
    if isinstance(err, IsADirectoryError):
        return f"{path} is a folder where a file is needed; pass a file"
    if isinstance(err, NotADirectoryError):
        return f"{path}: part of this path is a file where a folder is needed; pass a folder (e.g. another --out)"
    if isinstance(err, FileExistsError):
        return f"{path} already exists and is not a folder; remove it or choose another path"
    if isinstance(err, FileNotFoundError):
        return f"not found: {path}; check the path"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device of {path}; free some space or choose another --out"
    if err.errno == errno.EROFS:
        return f"{path} is on a read-only file system; choose another --out"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pathattn`` with ``argv`` (default: the process arguments); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), "")
    prefix = f"pathattn {command}".strip()
    parser: ArgumentParser | None = None
    try:
        parser = build_parser()
        cfg = parser.parse_args(argv)
        module = importlib.import_module(f"pathattn.cli.{cfg.command}")
        return int(module.run(cfg[cfg.command]) or 0)
    except PathattnError as err:
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return 2
    except argparse.ArgumentError as err:
        hint = f"see 'pathattn {command} --help'" if command in COMMANDS else "see 'pathattn --help'"
        print(f"{prefix}: error: {_argument_message(err, parser, argv)} ({hint})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "pathattn: interrupted; finished outputs are kept, re-run to resume ('segment fit': with --resume)",
            file=sys.stderr,
        )
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get("PATHATTN_DEBUG"):
            raise
        if isinstance(err, OSError) and (message := _path_message(err)):
            print(f"{prefix}: error: {_one_line(message)}", file=sys.stderr)
            return 2
        print(
            f"pathattn: internal error: {type(err).__name__}: {_one_line(err)} "
            "(set PATHATTN_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
