"""The fused attention gate: Triton (the interpreter on CPU) against the float64 torch reference, and the model gate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn import functional as F

from pathattn.kernels import attention_gate, reference
from pathattn.models.layers.attention_gate import GridAttentionGate
from pathattn.models.seg.attention_unet import AttentionUNet

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]
# relative to each tensor's largest magnitude: 2 eps of the storage dtype for half precision (the outputs' rounding),
# 16 eps for float32 (fp32 sums over up to ~1000 voxels in the psi gradients)
TOLERANCE = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
# (coarse grid, fine grid): integer ratios as between U-Net levels, the odd sizes a strided conv floors,
# non-integer and downsampling ratios, equal grids; more voxels than a block (256) and channels than a tile (16)
GRIDS = [
    ((5, 7), (10, 14)),
    ((5, 7), (11, 15)),
    ((3, 5), (10, 7)),
    ((7, 9), (5, 4)),
    ((6, 6), (6, 6)),
    ((3, 5, 4), (6, 10, 8)),
    ((4, 5, 3), (9, 11, 7)),
]


@pytest.fixture
def triton_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the Triton kernels (on CPU tensors: in the interpreter, which tests/conftest.py switches on)."""
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")


def gate_inputs(
    coarse: tuple[int, ...], fine: tuple[int, ...], dtype: torch.dtype, device: str = "cpu", batch: int = 2
) -> list[torch.Tensor]:
    """Leaf tensors theta_x, phi_g (batch, 20, *coarse), psi weight (20,), bias (1,) and x (batch, 17, *fine)."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(batch, 20, *coarse), (batch, 20, *coarse), (20,), (1,), (batch, 17, *fine)]
    return [torch.randn(s, generator=generator).to(device, dtype).requires_grad_() for s in shapes]


def outputs_and_grads(
    inputs: list[torch.Tensor], cotangents: tuple[torch.Tensor | None, torch.Tensor | None]
) -> tuple[torch.Tensor, ...]:
    """(gated, alpha, then the gradients of the inputs) of the loss sum(out * cotangent) over the given cotangents."""
    gated, alpha = attention_gate(*inputs)
    loss = sum(
        (out * d.to(out.dtype)).sum() for out, d in zip((gated, alpha), cotangents, strict=True) if d is not None
    )
    return gated, alpha, *torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


def assert_matches_float64(actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...], tol: float) -> None:
    """Each tensor within ``tol`` relative to the float64 one's largest magnitude (sums over voxels included)."""
    for name, a, e in zip(
        ("gated", "alpha", "d_theta", "d_phi", "d_psi_w", "d_psi_b", "d_x"), actual, expected, strict=True
    ):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a.double().cpu(), e, rtol=tol, atol=tol * max(e.abs().max().item(), 1.0), msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize(("coarse", "fine"), GRIDS)
def test_triton_forward_and_backward_match_the_float64_reference(triton_path, coarse, fine, dtype, device) -> None:
    inputs = gate_inputs(coarse, fine, dtype, device)
    exact = [t.detach().cpu().double().requires_grad_() for t in inputs]
    generator = torch.Generator().manual_seed(1)
    cotangents = (torch.randn(exact[4].shape, generator=generator), torch.randn(2, 1, *fine, generator=generator))
    actual = outputs_and_grads(inputs, tuple(d.to(device) for d in cotangents))
    assert type(actual[0].grad_fn).__name__ == "AttentionGateFunctionBackward"  # the kernels ran, not the fallback
    assert actual[0].dtype == actual[1].dtype == dtype
    assert_matches_float64(actual, outputs_and_grads(exact, cotangents), TOLERANCE[dtype])


@pytest.mark.parametrize("used", ["gated", "alpha"])
def test_backward_of_one_output_alone(triton_path, used) -> None:
    inputs = gate_inputs((4, 3, 5), (7, 6, 9), torch.float32)
    exact = [t.detach().double().requires_grad_() for t in inputs]
    cotangents = (torch.randn(exact[4].shape), None) if used == "gated" else (None, torch.randn(2, 1, 7, 6, 9))
    assert_matches_float64(outputs_and_grads(inputs, cotangents), outputs_and_grads(exact, cotangents), 2e-6)


def test_theta_and_phi_gradients_accumulate_separately(triton_path) -> None:
    """The backward returns one tensor for both; two backward passes must still give each leaf 2 x its gradient."""
    theta, phi, weight, bias, x = gate_inputs((3, 4), (6, 8), torch.float32)
    for _ in range(2):
        attention_gate(theta, phi, weight, bias, x)[0].square().sum().backward()
    assert theta.grad is not phi.grad
    torch.testing.assert_close(theta.grad, phi.grad)
    once = torch.autograd.grad(attention_gate(theta, phi, weight, bias, x)[0].square().sum(), theta)[0]
    torch.testing.assert_close(theta.grad, 2 * once)


@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 2)])
def test_empty_batch_gives_empty_outputs_and_zero_gradients(triton_path, spatial) -> None:
    inputs = gate_inputs(spatial, tuple(2 * s for s in spatial), torch.float32, batch=0)
    gated, alpha, *grads = outputs_and_grads(inputs, (torch.ones(0, 17, *(2 * s for s in spatial)), None))
    assert gated.shape == (0, 17, *(2 * s for s in spatial)) and alpha.shape == (0, 1, *(2 * s for s in spatial))
    assert grads[2].shape == (20,) and grads[3].shape == (1,)
    assert all(torch.isfinite(g).all() and g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize(("coarse", "fine"), [((3, 4), (5, 8)), ((2, 3, 2), (3, 5, 4))])
def test_reference_gradcheck(coarse, fine) -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 3, *coarse), (1, 3, *coarse), (3,), (1,), (1, 2, *fine)]
    inputs = [torch.randn(s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]
    assert torch.autograd.gradcheck(reference.attention_gate, inputs)


def test_float64_runs_the_reference_even_when_triton_is_asked(triton_path) -> None:
    inputs = gate_inputs((3, 4), (6, 8), torch.float64)
    gated, alpha = attention_gate(*inputs)
    expected = reference.attention_gate(*inputs)
    torch.testing.assert_close(gated, expected[0], rtol=0, atol=0)
    assert type(gated.grad_fn).__name__ != "AttentionGateFunctionBackward"


def test_mismatched_shapes_are_rejected() -> None:
    theta, phi, weight, bias, x = gate_inputs((3, 4), (6, 8), torch.float32)
    with pytest.raises(ValueError, match="must have theta_x's shape"):
        attention_gate(theta, phi[:, :, :2], weight, bias, x)
    with pytest.raises(ValueError, match=r"psi_weight must be \(20,\)"):
        attention_gate(theta, phi, weight[:3], bias, x)
    with pytest.raises(ValueError, match="both be 4-D or 5-D"):
        attention_gate(theta, phi, weight, bias, x[..., None])


def test_reference_is_the_gates_composition_of_torch_ops() -> None:
    """psi as a 1 x 1 conv, sigmoid and F.interpolate: what GridAttentionGate computed before the op existed."""
    theta, phi, weight, bias, x = (t.double() for t in gate_inputs((4, 3, 5), (9, 6, 11), torch.float32))
    coarse = torch.sigmoid(F.conv3d(F.relu(theta + phi), weight.reshape(1, -1, 1, 1, 1), bias))
    alpha = F.interpolate(coarse, size=x.shape[2:], mode="trilinear", align_corners=False)
    gated, actual = reference.attention_gate(theta, phi, weight, bias, x)
    torch.testing.assert_close(actual, alpha, rtol=0, atol=0)
    torch.testing.assert_close(gated, alpha * x, rtol=0, atol=0)


def run_both_paths(
    monkeypatch: pytest.MonkeyPatch,
    module: torch.nn.Module,
    inputs: list[torch.Tensor],
    tensors: Callable[[Any], list[torch.Tensor]] = list,
) -> list[list[torch.Tensor]]:
    """Per path (torch, triton): the module's output ``tensors`` and the gradients of every parameter and input."""
    results = []
    for choice in ("torch", "triton"):
        monkeypatch.setenv("PATHATTN_KERNELS", choice)
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        module.zero_grad()
        outputs = tensors(module(*leaves))
        sum(out.square().sum() for out in outputs).backward()
        results.append([*outputs, *(t.grad for t in leaves), *(p.grad for p in module.parameters())])
    return results


@pytest.mark.parametrize(("dims", "x_size", "g_size"), [(2, (9, 12), (4, 6)), (3, (7, 9, 5), (4, 5, 3))])
def test_grid_attention_gate_is_the_same_on_both_paths(monkeypatch, dims, x_size, g_size) -> None:
    torch.manual_seed(0)
    gate = GridAttentionGate(dims, in_channels=6, gating_channels=10).eval()
    reference_run, triton_run = run_both_paths(
        monkeypatch, gate, [torch.randn(2, 6, *x_size), torch.randn(2, 10, *g_size)]
    )
    for expected, actual in zip(reference_run, triton_run, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_attention_unet_is_the_same_on_both_paths(monkeypatch) -> None:
    torch.manual_seed(0)
    net = AttentionUNet(spatial_dims=2, channels=(2, 3, 4, 5, 6), deep_supervision="none").eval()
    inputs = [torch.randn(1, 1, 20, 28)]
    reference_run, triton_run = run_both_paths(monkeypatch, net, inputs, lambda out: [out.logits, *out.attention])
    assert len(reference_run[1:]) > 3  # the three gates' maps
    for expected, actual in zip(reference_run, triton_run, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
