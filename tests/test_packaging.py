"""Packaging: kernels/ installs as pathattn.kernels only, and every package is listed."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_only_under_pathattn():
    import pathattn.kernels

    assert Path(pathattn.kernels.__file__).parent.name == "kernels"
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('kernels') is not None)"
    assert subprocess.run([sys.executable, "-c", code], cwd="/", check=False).returncode == 0


def test_package_list_matches_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "pathattn").rglob("__init__.py")}
    found |= {"pathattn." + ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kernels").rglob("__init__.py")}
    assert listed == found


def test_help_is_fast_and_lists_commands():
    result = subprocess.run([sys.executable, "-m", "pathattn.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("tile", "synth", "demo"):
        assert command in result.stdout
    assert importlib.util.find_spec("pathattn") is not None
