"""GPU resources of the kernels, checked without a GPU: every kernel compiles for sm_80 and sm_90 (Triton's compiler
and ptxas, as kernels/bench/resources.py runs them) and fits 99 KiB of shared memory a program, the smallest limit
of Ampere, Ada and Hopper cards; the ABMIL launchers fall back to leaner configurations, and past the last one
``PATHATTN_KERNELS=auto`` runs the reference while ``triton`` raises a one-line error.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
from triton.runtime.errors import OutOfResources

from pathattn.kernels import ABMILWeights, abmil_pool, reference
from pathattn.kernels.abmil_pool import function
from pathattn.kernels.dispatch import KernelResourceError

ROOT = Path(__file__).resolve().parents[2]
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
LIMIT = 99 * 1024


@pytest.fixture(autouse=True)
def fresh_outcomes(monkeypatch):
    """Each test starts with no remembered configuration outcome (first_fitting's memo)."""
    monkeypatch.setattr(function, "_FITTING", {})


def test_the_launchers_use_the_first_configuration_that_loads_and_start_there_next_time():
    configs = function.Config.gpu(512, 132)
    tried = []

    def run(config: function.Config) -> int:
        tried.append(config)
        if config.block_h == 32:  # the 3-stage first configuration: too large
            raise OutOfResources(200_000, LIMIT, "shared memory")
        return config.num_stages

    assert function.first_fitting(run, configs, "abmil_pool forward", "key") == configs[1].num_stages
    assert tried == list(configs[:2])
    assert function.first_fitting(run, configs, "abmil_pool forward", "key") == configs[1].num_stages
    assert tried == [*configs[:2], configs[1]]  # the second call went straight to the one that fitted
    assert [c.num_stages for c in configs] == sorted((c.num_stages for c in configs), reverse=True)


def test_no_fitting_configuration_is_a_one_line_error_naming_the_fix_and_not_retried():
    tried = []

    def run(config: function.Config) -> None:
        tried.append(config)
        raise OutOfResources(131_072, LIMIT, "shared memory")

    configs = function.Config.gpu(1536, 132)
    for _ in range(2):
        with pytest.raises(KernelResourceError) as error:
            function.first_fitting(run, configs, "abmil_pool forward (L=1536)", "key")
    assert len(tried) == len(configs)  # the second call failed at once
    message = str(error.value)
    assert "\n" not in message and "abmil_pool forward (L=1536) needs 131072 of shared memory" in message
    assert "PATHATTN_KERNELS=torch" in message


class _NeverLoads:
    """A kernel that no configuration fits: every launch fails as Triton's loader does on a small GPU."""

    def __getitem__(self, grid: object):
        def launch(*args: object, **kwargs: object) -> None:
            raise OutOfResources(131_072, LIMIT, "shared memory")

        return launch


def _bag() -> tuple[torch.Tensor, ABMILWeights]:
    torch.manual_seed(0)
    weights = ABMILWeights(torch.randn(6, 8), torch.randn(6), torch.randn(1, 6), torch.randn(1))
    return torch.randn(1, 5, 8), weights


def test_auto_runs_the_reference_with_a_warning_where_no_kernel_fits(monkeypatch):
    monkeypatch.setattr(function, "forward_kernel", _NeverLoads())
    monkeypatch.setattr(importlib.import_module("pathattn.kernels.abmil_pool"), "use_triton", lambda *t: True)
    monkeypatch.setenv("PATHATTN_KERNELS", "auto")
    features, weights = _bag()
    with pytest.warns(RuntimeWarning, match="Running the torch reference"):
        pooled, logits = abmil_pool(features, weights)
    expected, expected_logits = reference.abmil_pool(features[0], torch.tensor([0, 5]), weights)
    torch.testing.assert_close(pooled, expected)
    torch.testing.assert_close(logits[0], expected_logits)


def test_triton_choice_raises_where_no_kernel_fits(monkeypatch):
    monkeypatch.setattr(function, "forward_kernel", _NeverLoads())
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    with pytest.raises(KernelResourceError, match="PATHATTN_KERNELS=torch"):
        abmil_pool(*_bag())


@pytest.mark.skipif(not PTXAS.exists(), reason="this triton wheel ships no ptxas")
@pytest.mark.timeout(1200)
def test_every_kernel_compiles_for_ampere_and_hopper_within_99_kib_a_program():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, str(ROOT / "kernels" / "bench" / "resources.py"), "--arch", "80", "90", "--json"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    usages = [json.loads(line) for line in done.stdout.splitlines()]
    failed = {(u["arch"], u["case"]): u["error"] for u in usages if u["error"]}
    # L = D = 1536 pads to 2048 columns: no configuration fits 99 KiB (it does fit an H100's 227 KiB)
    assert set(failed) == {(arch, "abmil_pool no encoder L=D=1536 H=256 K=1 gated bf16") for arch in (80, 90)}
    assert all("abmil_pool forward (D=1536, L=1536" in e and "PATHATTN_KERNELS=torch" in e for e in failed.values())
    compiled = [u for u in usages if not u["error"]]
    assert max(u["shared"] for u in compiled) <= LIMIT
    kernels = {(u["arch"], u["kernel"]) for u in compiled}
    names = {"forward_kernel", "backward_kernel", "combine_kernel", "partials_kernel", "removed_kernel", "added_kernel"}
    names |= {f"{grid}_{step}_kernel" for grid in ("coarse", "gate") for step in ("forward", "backward")}
    assert kernels == {(arch, name) for arch in (80, 90) for name in names}
    hippo = [u for u in compiled if u["case"].startswith("abmil_pool HIPPO") and u["kernel"] != "combine_kernel"]
    assert len(hippo) == 2 * 2 * 3  # forward and backward, both architectures, three dtypes
