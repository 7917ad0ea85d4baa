"""masked_pool: the rules against explicit masks, the Triton kernels (the interpreter on CPU) against float64."""

from __future__ import annotations

import pytest
import torch

from pathattn.kernels import masked_pool, reference

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]
# relative to the largest value: float32 accumulation over up to ~1000 instances, half precision's rounding
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


@pytest.fixture(params=["torch", "triton"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on both implementations (Triton: the interpreter on CPU tensors, see tests/conftest.py)."""
    monkeypatch.setenv("PATHATTN_KERNELS", request.param)
    return request.param


def bag(n: int, heads: int, n_values: int, dtype: torch.dtype = torch.float32, device: str = "cpu", spread=3.0):
    """Seeded logits (n, heads) with a few dominant instances and values (n, n_values)."""
    generator = torch.Generator().manual_seed(n * 31 + heads)
    logits = spread * torch.randn(n, heads, generator=generator, dtype=torch.float64)
    values = torch.randn(n, n_values, generator=generator, dtype=torch.float64)
    return logits.to(device, dtype), values.to(device, dtype)


def dense64(logits: torch.Tensor, values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The definition in float64, written out: softmax over each mask's instances, zeros for an empty mask."""
    a, v = logits.double().cpu(), values.double().cpu()
    out = torch.zeros(len(masks), a.shape[1], v.shape[1], dtype=torch.float64)
    for m, mask in enumerate(masks.cpu()):
        if mask.any():
            weights = torch.softmax(a[mask], dim=0)  # (|S|, H)
            out[m] = weights.T @ v[mask]
    return out


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    assert torch.isfinite(actual).all()
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual.double().cpu(), expected, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize(("n", "heads"), [(1, 3), (7, 1), (1023, 3), (4097, 1)])
def test_given_masks_match_the_definition(path: str, n: int, heads: int) -> None:
    logits, values = bag(n, heads, 5)
    generator = torch.Generator().manual_seed(n)
    masks = torch.rand(7, n, generator=generator) < 0.6
    masks[0] = False  # an empty bag: zeros
    masks[1] = True
    pooled = masked_pool(logits, values, masks)
    assert pooled.shape == (7, heads, 5) and pooled.dtype == torch.float32
    assert_close(pooled, dense64(logits, values, masks), torch.float32)
    assert (pooled[0] == 0).all()


def removal_sets(n: int, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSR sets (with an empty set, a set outside keep, and one holding all of keep) and their explicit masks."""
    generator = torch.Generator().manual_seed(n + 1)
    sets = [torch.randperm(n, generator=generator)[: int(k)].sort().values for k in (1, 0, 3, 2, min(n, 17))]
    sets.append(keep.nonzero()[:, 0])  # everything kept goes: the exact recompute of an empty bag
    sets.append((~keep).nonzero()[:, 0][:2])  # only instances that are not in the bag: nothing changes
    offsets = torch.tensor([0] + [len(s) for s in sets]).cumsum(0)
    masks = keep.expand(len(sets), -1).clone()
    for row, members in enumerate(sets):
        masks[row, members] = False
    return torch.cat(sets), offsets, masks


@pytest.mark.parametrize("n", [7, 1023])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_remove_sets_match_explicit_masks(path: str, n: int, dtype: torch.dtype) -> None:
    logits, values = bag(n, 2, 3, dtype)
    keep = torch.arange(n) % 3 != 1
    indices, offsets, masks = removal_sets(n, keep)
    pooled = masked_pool(logits, values, rule="remove_sets", keep=keep, indices=indices, offsets=offsets)
    assert pooled.dtype == dtype
    assert_close(pooled, dense64(logits, values, masks), dtype)
    assert (pooled[len(offsets) - 3] == 0).all()


@pytest.mark.parametrize("n", [1, 7, 1023])
def test_all_but_one_and_add_one_match_explicit_masks(path: str, n: int) -> None:
    logits, values = bag(n, 2, 6)
    keep = torch.arange(n) % 4 != 0
    candidates = torch.arange(n)[torch.arange(n) % max(1, n // 12) < 2]  # about 24 of them, in and out of keep
    flipped = keep.expand(len(candidates), -1).clone()
    flipped[torch.arange(len(candidates)), candidates] ^= True
    inside = keep[candidates]
    removed = masked_pool(logits, values, rule="all_but_one", keep=keep, indices=candidates[inside])
    added = masked_pool(logits, values, rule="add_one", keep=keep, indices=candidates[~inside])
    assert_close(removed, dense64(logits, values, flipped[inside]), torch.float32)
    assert_close(added, dense64(logits, values, flipped[~inside]), torch.float32)


def test_a_dominant_instance_removed_is_recomputed_exactly(path: str) -> None:
    """Removing the instance holding ~all the attention would cancel every digit of ``1 - w_j``."""
    logits, values = bag(300, 1, 4, torch.float64, spread=1.0)
    logits[17] = 60.0  # weight 1 - 1e-24: the subtraction alone leaves nothing
    pooled = masked_pool(logits[:, 0], values, rule="all_but_one", indices=torch.tensor([17, 3]))
    masks = torch.ones(2, 300, dtype=torch.bool)
    masks[0, 17] = masks[1, 3] = False
    assert pooled.shape == (2, 4)
    assert_close(pooled, dense64(logits, values, masks)[:, 0], torch.float64)


def test_adding_to_an_empty_bag_gives_the_instance(path: str) -> None:
    logits, values = bag(9, 2, 3)
    pooled = masked_pool(logits, values, rule="add_one", keep=torch.zeros(9, dtype=torch.bool),
                         indices=torch.tensor([4, 0]))  # fmt: skip
    assert_close(pooled, values[[4, 0], None].expand(-1, 2, -1).double(), torch.float32)


def test_no_instances_or_no_masks_give_zeros(path: str) -> None:
    logits, values = bag(5, 1, 3)
    assert masked_pool(logits[:0], values[:0], torch.zeros(2, 0, dtype=torch.bool)).eq(0).all()
    assert masked_pool(logits, values, torch.zeros(0, 5, dtype=torch.bool)).shape == (0, 1, 3)
    assert masked_pool(logits, values, rule="all_but_one", indices=torch.zeros(0, dtype=torch.int64)).shape == (
        0, 1, 3)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(monkeypatch: pytest.MonkeyPatch, device: str, dtype: torch.dtype) -> None:
    """Half-precision logits and values, accumulated in float32, on the Triton path."""
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    logits, values = bag(257, 2, 5, dtype, device)
    masks = torch.rand(6, 257, generator=torch.Generator().manual_seed(2)).to(device) < 0.5
    keep = masks[0]
    pooled = masked_pool(logits, values, masks)
    removed = masked_pool(logits, values, rule="all_but_one", keep=keep, indices=keep.nonzero()[:5, 0])
    flipped = keep.expand(5, -1).clone()
    flipped[torch.arange(5), keep.nonzero()[:5, 0]] = False
    assert pooled.dtype == dtype
    assert_close(pooled, dense64(logits, values, masks), dtype)
    assert_close(removed, dense64(logits, values, flipped), dtype)


@pytest.mark.cuda
@CUDA
def test_large_bag_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """K = 64 masks over 100k instances: many splits of N combined by log-sum-exp."""
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    logits, values = bag(100_000, 1, 2, torch.float32, "cuda")
    masks = torch.rand(64, 100_000, device="cuda") < 0.9
    assert_close(masked_pool(logits, values, masks), dense64(logits, values, masks), torch.float32)


def test_triton_path_has_no_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    logits, values = bag(7, 1, 2)
    with pytest.raises(RuntimeError, match="no backward"):
        masked_pool(logits.requires_grad_(), values, torch.ones(1, 7, dtype=torch.bool))


def test_reference_gradcheck() -> None:
    logits, values = bag(6, 2, 3, torch.float64)
    keep = torch.tensor([True, True, False, True, True, True])
    indices, offsets = torch.tensor([0, 3, 1]), torch.tensor([0, 1, 3])

    def removed(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return reference.masked_pool_removed(a, v, keep, indices, offsets)

    def added(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return reference.masked_pool_added(a, v, keep, torch.tensor([2, 4]))

    inputs = (logits.requires_grad_(), values.requires_grad_())
    assert torch.autograd.gradcheck(removed, inputs)
    assert torch.autograd.gradcheck(added, inputs)
    assert torch.autograd.gradcheck(lambda a, v: reference.masked_pool(a, v, keep[None]), inputs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "drop"}, "unknown masked_pool rule"),
        ({"rule": "all_but_one"}, "missing: indices"),
        ({"rule": "masks", "indices": torch.tensor([0])}, "not taken: indices"),
        ({"rule": "all_but_one", "indices": torch.tensor([7])}, "indices must lie in 0..6"),
        ({"rule": "remove_sets", "indices": torch.tensor([1, 1]), "offsets": torch.tensor([0, 2])}, "twice"),
        ({"rule": "remove_sets", "indices": torch.tensor([1]), "offsets": torch.tensor([0, 2])}, "rise from 0"),
        ({"masks": torch.ones(2, 6, dtype=torch.bool)}, r"masks must be \(M, 7\) bool"),
    ],
)
def test_arguments_that_do_not_fit_the_rule(kwargs: dict, message: str) -> None:
    logits, values = bag(7, 1, 2)
    with pytest.raises(ValueError, match=message):
        masked_pool(logits, values, **kwargs)
