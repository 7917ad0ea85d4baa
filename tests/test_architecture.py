"""The stage boundaries: a stage imports io/, models/ and the neutral packages, never another stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pathattn"
STAGES = ("tile", "extract", "train", "segment", "explain", "evaluate", "report")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names), lazily inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage: str) -> None:
    others = [s for s in STAGES if s != stage]
    crossing = sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in (PACKAGE / stage).rglob("*.py")
        for name in imported_modules(path)
        if any(name == f"pathattn.{o}" or name.startswith(f"pathattn.{o}.") for o in others)
    )
    assert not crossing, "; ".join(crossing)
