"""abmil_pool: the fused Triton path against the float64 torch reference, forward and backward, and the models on both.

Without a GPU the Triton kernels run in the interpreter (tests/conftest.py sets TRITON_INTERPRET=1), which handles
fp32 and fp16 but not bf16: bf16 runs on a CUDA device only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from pathattn.kernels import ABMILWeights, abmil_pool, reference
from pathattn.kernels.abmil_pool import function
from pathattn.models.mil import ABMIL, ACMIL, CLAMSB

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
# Max error over max magnitude; fp32 is TF32 on a GPU, exact in the interpreter.
TOLERANCE = {torch.float32: 1e-2 if CUDA else 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@dataclass(frozen=True)
class Case:
    """One configuration: bag lengths (packed) or (B, N) (padded), sizes and the attention variant."""

    name: str
    bags: tuple[int, ...]
    padded: bool
    D: int
    L: int
    H: int
    K: int
    gated: bool = True
    encoder: bool = True
    encoder_bias: bool = True
    mask: str = "none"  # none, instance or head


CASES = [
    Case("one-instance", (2, 1), True, 19, 23, 17, 1),
    Case("n7-plain-identity-k5", (3, 7), True, 21, 21, 33, 5, gated=False, encoder=False, mask="instance"),
    Case("packed-empty-bags", (0, 7, 1, 0, 30), False, 17, 20, 19, 5, encoder_bias=False, mask="instance"),
    Case("n1023-head-masks", (1, 1023), True, 20, 18, 17, 5, mask="head"),
    Case("n4097-tiny", (4097, 3), False, 3, 5, 4, 1),
]


def make_weights(case: Case, dtype: torch.dtype = torch.float64) -> ABMILWeights:
    """Random weights of ``case`` (leaves that require grad), scaled so the logits spread over a few units."""

    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        weight = torch.randn(*shape, dtype=torch.float64) * scale / shape[-1] ** 0.5
        return weight.to(DEVICE, dtype).requires_grad_()

    gate = (leaf(case.H, case.L), leaf(case.H)) if case.gated else (None, None)
    encoder = (leaf(case.L, case.D), leaf(case.L) if case.encoder_bias else None) if case.encoder else (None, None)
    score = (leaf(case.K, case.H, scale=3.0), leaf(case.K))
    return ABMILWeights(leaf(case.H, case.L), leaf(case.H), *score, *gate, *encoder)


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """features (float64), mask and offsets (None for a padded case) of ``case``.

    With several bags, the mask drops one bag entirely (padded: the first; packed: the second, the first may be empty).
    """
    shape = case.bags if case.padded else (sum(case.bags),)
    features = torch.randn(*shape, case.D, dtype=torch.float64, device=DEVICE)
    offsets = None if case.padded else torch.tensor([0, *case.bags], device=DEVICE).cumsum(0)
    if case.mask == "none":
        return features, None, offsets
    mask = torch.rand(*shape, *((case.K,) if case.mask == "head" else ()), device=DEVICE) > 0.3
    if case.padded and case.bags[0] > 1:
        mask[0] = False
    elif not case.padded:
        mask[int(offsets[1]) : int(offsets[2])] = False
    return features, mask, offsets


def run(
    features: torch.Tensor,
    weights: ABMILWeights,
    mask: torch.Tensor | None,
    offsets: torch.Tensor | None,
    d_pooled: torch.Tensor,
    d_logits: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Outputs and the gradients of features and of every weight under the given upstream gradients."""
    leaves = [features, *(w for w in weights if w is not None)]
    pooled, logits = abmil_pool(features, weights, mask=mask, offsets=offsets)
    grads = torch.autograd.grad((pooled, logits), leaves, (d_pooled.to(pooled.dtype), d_logits.to(logits.dtype)))
    return pooled, logits, grads


def assert_close(got: torch.Tensor, want: torch.Tensor, tolerance: float, what: str) -> None:
    """Max error at most ``tolerance`` times the reference's magnitude (at least 1); -inf where the reference is."""
    assert torch.equal(torch.isneginf(got), torch.isneginf(want)), what
    finite = torch.isfinite(want)
    assert torch.isfinite(got[finite]).all(), what
    error = (got[finite].double() - want[finite]).abs().max() if finite.any() else 0.0
    assert error <= tolerance * max(1.0, want[finite].abs().max().item() if finite.any() else 1.0), (what, error)


def check_against_reference(case: Case, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Triton path in ``dtype`` against the float64 reference on the same (rounded) inputs, with gradients."""
    torch.manual_seed(0)
    weights64, (features64, mask, offsets) = make_weights(case), make_inputs(case)
    weights = ABMILWeights(*(None if w is None else w.detach().to(dtype).requires_grad_() for w in weights64))
    features = features64.to(dtype).requires_grad_()
    rounded = ABMILWeights(*(None if w is None else w.double().detach().requires_grad_() for w in weights))
    n_bags = len(case.bags) if not case.padded else case.bags[0]
    d_pooled = torch.randn(n_bags, case.K, case.L if case.encoder else case.D, dtype=torch.float64, device=DEVICE)
    d_logits = torch.randn(*features.shape[:-1], case.K, dtype=torch.float64, device=DEVICE)
    monkeypatch.setenv("PATHATTN_KERNELS", "torch")
    want = run(features.detach().double().requires_grad_(), rounded, mask, offsets, d_pooled, d_logits)
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    got = run(features, weights, mask, offsets, d_pooled, d_logits)
    assert got[0].dtype == got[1].dtype == dtype
    assert_close(got[0], want[0], TOLERANCE[dtype], "pooled")
    assert_close(got[1], want[1], TOLERANCE[dtype], "logits")
    names = ["features", *(name for name, w in zip(ABMILWeights._fields, weights, strict=True) if w is not None)]
    for name, g, w in zip(names, got[2], want[2], strict=True):
        assert_close(g, w, 2 * TOLERANCE[dtype], f"d {name}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_triton_matches_the_float64_reference_in_fp32(case, monkeypatch):
    monkeypatch.setattr(function, "CHUNK_ROWS", 256)  # several backward chunks for the long bags
    check_against_reference(case, torch.float32, monkeypatch)


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: c.name)
def test_triton_matches_the_float64_reference_in_fp16(case, monkeypatch):
    check_against_reference(case, torch.float16, monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_triton_matches_the_float64_reference_on_cuda(case, dtype, monkeypatch):
    check_against_reference(case, dtype, monkeypatch)


@pytest.mark.parametrize("kernels", ["torch", "triton"])
def test_empty_and_fully_masked_bags_pool_to_zeros_without_nan(kernels, monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", kernels)
    case = Case("empty", (0, 3, 0, 2), False, 5, 6, 7, 2)
    weights = make_weights(case, torch.float32)
    features = torch.randn(5, 5, device=DEVICE, requires_grad=True)
    keep = torch.tensor([True, True, True, False, False], device=DEVICE)
    offsets = torch.tensor([0, 0, 3, 3, 5], device=DEVICE)
    pooled, logits = abmil_pool(features, weights, mask=keep, offsets=offsets)
    assert torch.equal(pooled[[0, 2, 3]], torch.zeros_like(pooled[[0, 2, 3]]))
    assert pooled[1].abs().sum() > 0 and torch.isneginf(logits[3:]).all()
    (pooled.sum() + logits[:3].sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (features, *(w for w in weights if w is not None)))
    assert torch.equal(features.grad[3:], torch.zeros_like(features.grad[3:]))
    nothing = torch.zeros(0, 5, device=DEVICE, requires_grad=True)
    pooled, logits = abmil_pool(nothing, weights, offsets=torch.zeros(3, dtype=torch.int64, device=DEVICE))
    assert pooled.shape == (2, 2, 6) and not pooled.any() and logits.shape == (0, 2)
    pooled.sum().backward()


def test_padded_bags_equal_packed_bags_of_their_real_instances(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    case = Case("layouts", (3, 9), True, 6, 7, 5, 2)
    weights = make_weights(case, torch.float32)
    features, mask = torch.randn(3, 9, 6, device=DEVICE), torch.rand(3, 9, device=DEVICE) > 0.4
    pooled, logits = abmil_pool(features, weights, mask=mask)
    offsets = torch.cat([mask.new_zeros(1, dtype=torch.int64), mask.sum(1).cumsum(0)])
    packed, packed_logits = abmil_pool(features[mask], weights, offsets=offsets)
    torch.testing.assert_close(pooled, packed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[mask], packed_logits, atol=1e-5, rtol=1e-5)


def test_triton_path_saves_per_instance_scalars_not_activations(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    case = Case("memory", (1, 200), True, 30, 40, 50, 1)
    weights = make_weights(case, torch.float32)
    features = torch.randn(1, 200, 30, device=DEVICE)
    inputs = {t.data_ptr() for t in (features, *(w for w in weights if w is not None))}
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        abmil_pool(features, weights)
    extra = sum(t.numel() for t in saved if t.data_ptr() not in inputs)
    assert 0 < extra <= 200 * case.K + case.K + case.K * case.L + 2  # logits, lse, pooled, offsets


@pytest.mark.parametrize("variant", ["gated", "plain"])
def test_reference_passes_gradcheck(variant):
    case = Case("gradcheck", (0, 3, 4), False, 4, 5, 3, 2, gated=variant == "gated", mask="instance")
    weights = make_weights(case)
    features = torch.randn(7, 4, dtype=torch.float64, device=DEVICE, requires_grad=True)
    keep = torch.tensor([1, 1, 0, 1, 1, 0, 1], dtype=torch.bool, device=DEVICE)
    offsets = torch.tensor([0, 0, 3, 7], device=DEVICE)
    leaves = [features, *(w for w in weights if w is not None)]

    def pooled_and_finite_logits(x: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        it = iter(params)
        rebuilt = ABMILWeights(*(None if w is None else next(it) for w in weights))
        pooled, logits = reference.abmil_pool(x, offsets, rebuilt, keep)
        return pooled, logits[keep]

    assert torch.autograd.gradcheck(pooled_and_finite_logits, leaves)


def test_reference_equals_scoring_then_attention_pool():
    case = Case("oracle", (2, 6), True, 5, 4, 3, 3)
    weights, features = make_weights(case), torch.randn(2, 6, 5, dtype=torch.float64, device=DEVICE)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool, device=DEVICE)
    pooled, logits = reference.abmil_pool(
        features.flatten(0, 1), torch.tensor([0, 6, 12], device=DEVICE), weights, mask.flatten()
    )
    embeddings, scores = reference.abmil_scores(features, weights)
    want, _ = reference.attention_pool(scores, embeddings, mask)
    torch.testing.assert_close(pooled, want)
    torch.testing.assert_close(logits.view(2, 6, 3), scores.masked_fill(~mask[..., None], float("-inf")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offsets": torch.tensor([0, 2])}, "offsets with packed"),
        ({"mask": torch.ones(2, 3, dtype=torch.bool)}, "mask must be bool"),
    ],
)
def test_arguments_that_do_not_fit_are_refused(kwargs, message):
    weights = make_weights(Case("checks", (2, 2), True, 3, 4, 5, 1), torch.float32)
    with pytest.raises(ValueError, match=message):
        abmil_pool(torch.zeros(2, 2, 3, device=DEVICE), weights, **kwargs)


MODELS = {
    "abmil": lambda: ABMIL(10, 3, embed_dim=12, attn_dim=9),
    "abmil-plain-no-bias": lambda: ABMIL(10, 3, embed_dim=12, attn_dim=9, gated=False, encoder_bias=False),
    "acmil": lambda: ACMIL(10, 3, embed_dim=12, attn_dim=9, n_branches=3, top_k=4, mask_prob=0.5),
    "clam-sb": lambda: CLAMSB(10, 3, embed_dim=12, attn_dim=9, k_sample=2, dropout=0.0),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_models_give_the_same_results_and_gradients_on_both_paths(name, training, monkeypatch):
    torch.manual_seed(0)
    model = MODELS[name]().to(DEVICE).train(training)
    if training:  # the fused path runs without dropout only
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    features = torch.randn(2, 11, 10, device=DEVICE)
    mask = torch.arange(11, device=DEVICE)[None] < torch.tensor([[11], [6]], device=DEVICE)
    launches = []
    kernels_forward = function.forward
    monkeypatch.setattr(function, "forward", lambda *args: launches.append(1) or kernels_forward(*args))
    results = {}
    for kernels in ("torch", "triton"):
        monkeypatch.setenv("PATHATTN_KERNELS", kernels)
        model.zero_grad()
        generator = torch.Generator(DEVICE).manual_seed(1)
        extra = {"generator": generator} if name == "acmil" else {}
        output = model(features, mask, **extra)
        output.logits.sum().backward()
        grads = {key: p.grad.clone() for key, p in model.named_parameters() if p.grad is not None}
        results[kernels] = (output, grads)
    (want, want_grads), (got, got_grads) = results["torch"], results["triton"]
    assert len(launches) == (2 if name == "acmil" and training else 1)  # STKIM scores the bag first
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.attention, want.attention, atol=1e-4, rtol=1e-4)
    for key in want.extras:
        torch.testing.assert_close(got.extras[key], want.extras[key], atol=1e-4, rtol=1e-4)
    assert got_grads.keys() == want_grads.keys()
    for key, grad in want_grads.items():
        torch.testing.assert_close(got_grads[key], grad, atol=1e-4, rtol=1e-4, msg=key)
