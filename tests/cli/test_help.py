"""One command-line convention: help in words, dashed options, and messages that name options as typed."""

from __future__ import annotations

import re

import pytest

from pathattn.cli.main import COMMANDS, build_parser, main

NESTED = (("synth", "wsi"), ("evaluate", "wsol"))
NOT_WORDS = ("<function", "<lambda>", "<class", "Literal[", "Union[", "typing.", "``", "NoneType")


@pytest.mark.parametrize("command", [(name,) for name in COMMANDS] + list(NESTED), ids=" ".join)
def test_help_shows_types_and_choices_in_words(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "usage: pathattn" in text
    assert [pattern for pattern in NOT_WORDS if pattern in text] == [], text


def _option_strings(parser):
    for action in parser._actions:
        yield from action.option_strings
        for subparser in getattr(action, "_name_parser_map", {}).values():
            yield from _option_strings(subparser)


def test_every_option_of_every_command_is_dashed():
    options = set(_option_strings(build_parser()))
    assert {"--print-config", "--n-folds", "--skip-missing", "--no-deterministic", "--patch-size"} <= options
    assert sorted(o for o in options if not re.fullmatch(r"-h|--[a-z0-9]+(-[a-z0-9]+)*\+?", o)) == []


def test_train_help_shows_flags_and_choices(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--skip-missing, --no-skip-missing" in text and "(type: flag, default: False)" in text
    assert "(type: one of classification, survival, default: classification)" in text
    assert "(type: integer or null, default: null)" in text and "(type: path or null, default: null)" in text
    assert "(type: integer, auto, or list of integers, default: 1)" in text


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_messages_name_options_as_typed(tmp_path, capsys):
    assert main(["tile", "--out", "o", "--patch-size", "two"]) == 2
    assert _error(capsys) == (
        "pathattn tile: error: --patch-size expects integer, not 'two' (see 'pathattn tile --help')"
    )
    config = tmp_path / "tile.yaml"
    config.write_text("patch_size: two\n")
    assert main(["tile", "--out", "o", "--config", str(config)]) == 2
    assert _error(capsys).startswith("pathattn tile: error: patch_size of a --config file expects integer, not 'two'")
    assert main(["tile", "--slides", "s"]) == 2
    assert _error(capsys).startswith("pathattn tile: error: missing --out")
    assert main(["tile", "--out", "o", "--print_config"]) == 2
    assert "(options are written with dashes: --print-config)" in _error(capsys)


def test_yaml_syntax_error_of_any_command_names_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "tile.yaml"
    config.write_text("mpp: 0.5\npatch_size: [224,\n")
    assert main(["tile", "--config", str(config), "--out", "o"]) == 2
    assert _error(capsys).startswith(f"pathattn tile: error: --config {config}: not valid YAML at line 3, column 1")
