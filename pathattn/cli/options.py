"""How the commands declare and describe their options, defined once so that they read the same everywhere.

The convention of every command: options are dashed (``--patch-size``); a boolean option is a bare flag
(``--skip-missing`` turns it on, ``--no-deterministic`` turns off one that is on by default); the key of
an option in a ``--config`` YAML file is its name without the leading dashes, with ``_`` for ``-``
(``patch_size: 256``). :class:`HelpFormatter` writes every option's type and choices in words.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal

from jsonargparse import ActionYesNo, ArgumentParser, DefaultHelpFormatter

from pathattn.models.checkpoint_formats import CHECKPOINT_FORMATS

CHECKPOINT_HELP = "a .ckpt of 'pathattn train' (RUN/fold_k/checkpoints), or a HIPPO or CLAM-SB state dict"
RUN_HELP = "instead of --checkpoint: a 'pathattn train' run folder, each of its slides with its out-of-fold model"
NO_PREFIX = "no-"  # a flag that is on by default is turned off by --no-NAME
TYPE_WORDS = {"str": "text", "int": "integer", "float": "number", "bool": "true or false", "Path": "path"}
LIST_WORDS = {"str": "texts", "int": "integers", "float": "numbers", "Path": "paths"}
_REST_MARKUP = re.compile(r"(?::\w+:)?`{1,2}([^`]*)`{1,2}")  # ``code``, `text` and :role:`target`


def option_name(key: str) -> str:
    """The command-line spelling of an option from its YAML key or destination (``n_folds`` → ``--n-folds``)."""
    return "--" + key.rsplit(".", 1)[-1].replace("_", "-")


def type_words(hint: Any) -> str:
    """A type annotation in words: ``int | None`` → ``integer or null``, ``Literal["a", "b"]`` → ``one of a, b``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return str(args[0]) if len(args) == 1 else "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        words = [type_words(arg) for arg in args if arg is not type(None)]
        words += ["null"] if type(None) in args else []
        return ", ".join(words[:-1]) + (", or " if len(words) > 2 else " or ") + words[-1]
    if origin in (list, tuple):
        name = getattr(args[0], "__name__", "") if args else ""
        return "list of " + LIST_WORDS.get(name, "values")
    if origin is dict or hint is dict:
        return "mapping (YAML or JSON, e.g. {key: value})"
    name = getattr(hint, "__name__", str(hint))
    return TYPE_WORDS.get(name, name)


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help with every type and choice in words and without reST markup."""

    def _get_type_str(self, action: Any) -> str | None:
        if action.choices is not None and not isinstance(action.choices, dict):
            return "one of " + ", ".join(map(str, action.choices))
        if isinstance(action, ActionYesNo) or (action.nargs == 0 and isinstance(action.const, bool)):
            return "flag"  # a bare flag (--NAME, and --no-NAME of ActionYesNo), or store_true/store_false
        if action.nargs == 0:
            return None  # --help, --version
        hint = getattr(action, "_typehint", None) or action.type
        return None if hint is None else type_words(hint)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(_REST_MARKUP.sub(r"\1", text), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(_REST_MARKUP.sub(r"\1", text), width, indent)


def add_dataclass_options(p: ArgumentParser, cls: type) -> None:
    """One option per field of the dataclass ``cls``, by the convention of the module docstring.

    The help of each option is the field's entry in the ``Args:`` section of the class docstring; a field
    without a default is a required option.

    Args:
        p: the command's parser.
        cls: a dataclass whose fields are the command's options.
    """
    import docstring_parser

    hints = typing.get_type_hints(cls)
    docs = {d.arg_name: d.description for d in docstring_parser.parse(cls.__doc__ or "").params}
    for field in dataclasses.fields(cls):
        name, hint, text = option_name(field.name), hints[field.name], docs.get(field.name)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            p.add_argument(name, type=hint, required=True, help=text)
            continue
        if hint is bool:
            p.add_argument(name, action=ActionYesNo(no_prefix=NO_PREFIX), default=default, help=text)
        else:
            p.add_argument(name, type=hint, default=default, help=text)


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


def use_conventions(parser: ArgumentParser) -> None:
    """Give ``parser`` and every subcommand parser under it :class:`HelpFormatter` and a dashed ``--print-config``."""
    parser.formatter_class = HelpFormatter
    _dash_print_config(parser)
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its actions (and subcommands) here only
        for subparser in getattr(action, "_name_parser_map", {}).values():
            use_conventions(subparser)


def _dash_print_config(parser: ArgumentParser) -> None:
    """Rename jsonargparse's ``--print_config`` to ``--print-config`` (its name is fixed when ``--config`` is added)."""
    action = parser._option_string_actions.pop("--print_config", None)  # noqa: SLF001
    if action is None:
        return
    action.option_strings = ["--print-config"]
    parser._option_string_actions["--print-config"] = action  # noqa: SLF001
    parser._print_config = "--print-config"  # noqa: SLF001 - jsonargparse reads it to allow the bare flag
