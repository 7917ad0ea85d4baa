"""One loader for trained models: pathattn, HIPPO and CLAM-SB checkpoints, detected by content, and bad files."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pathattn.errors import PathattnError
from pathattn.models.mil import CLAMSB
from pathattn.models.mil.adapters import CLAM_SB_KEYS, rename_keys
from pathattn.models.trained import TrainedModel, detect_format, load_trained
from pathattn.registry import create_model
from pathattn.train.mil.data import collate_bags
from pathattn.train.mil.system import MILSystem

IN_DIM = 6


def _lightning_checkpoint(path, name: str, task: str, n_outputs: int, feature_norm: str) -> None:
    """Train a tiny system for one epoch with a Lightning Trainer and save its checkpoint (as ``pathattn train``)."""
    torch.manual_seed(0)
    spec = {"name": name, "kwargs": {"in_dim": IN_DIM, "n_classes": n_outputs, "embed_dim": 8, "attn_dim": 4}}
    classes = ["normal", "tumor"] if task == "classification" else []
    system = MILSystem(create_model(spec["name"], **spec["kwargs"]), task=task, lr=0.05, model_spec=spec,
                       class_names=classes, feature_norm=feature_norm)  # fmt: skip
    system.set_feature_stats(torch.randn(IN_DIM), torch.rand(IN_DIM) + 0.5)
    bags = [{"features": torch.randn(5 + i, IN_DIM), "label": i % 2, "time": 3.0 + i, "event": 1, "index": i}
            for i in range(4)]  # fmt: skip
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(system, DataLoader(bags, batch_size=2, collate_fn=collate_bags))
    trainer.save_checkpoint(path)


@pytest.mark.parametrize(
    ("name", "task", "n_outputs", "feature_norm"),
    [("abmil", "classification", 2, "standardize"), ("acmil", "survival", 3, "none")],
)
def test_pathattn_checkpoint_gives_the_logits_of_milsystem_load(tmp_path, name, task, n_outputs, feature_norm):
    path = tmp_path / "last.ckpt"
    _lightning_checkpoint(path, name, task, n_outputs, feature_norm)
    torch.load(path, map_location="cpu", weights_only=True)  # nothing in the checkpoint needs unpickling
    model = load_trained(path)
    system = MILSystem.load(path).eval()
    assert (model.name, model.task, model.in_dim) == (name, task, IN_DIM)
    assert model.class_names == (("normal", "tumor") if task == "classification" else ())
    assert (model.feature_mean is None) == (feature_norm == "none")
    features = torch.randn(1, 11, IN_DIM) * 2
    with torch.no_grad():
        expected = system(features)
        found = model.network(model.normalize(features))
    torch.testing.assert_close(found.logits, expected.logits, atol=0, rtol=0)
    torch.testing.assert_close(found.attention, expected.attention, atol=0, rtol=0)
    torch.testing.assert_close(model.scores(found.logits), system.scores(expected.logits), atol=0, rtol=0)
    assert load_trained(path, checkpoint_format="pathattn").name == name


@pytest.mark.parametrize("gated", [True, False])
def test_hippo_state_dict_gives_hippos_logits_and_attention(tmp_path, gated):
    hippo = pytest.importorskip("hippo")
    torch.manual_seed(1)
    reference = hippo.AttentionMILModel(in_features=20, L=16, D=8, num_classes=3, gated_attention=gated).eval()
    path = tmp_path / "model_best.pt"
    torch.save(reference.state_dict(), path)
    assert detect_format(reference.state_dict()) == "hippo"
    model = load_trained(path)
    assert model.name == ("abmil" if gated else "abmil_plain") and model.class_names == ("0", "1", "2")
    assert model.feature_mean is None and model.task == "classification"
    features = torch.randn(13, 20)
    with torch.no_grad():
        expected, found = reference(features), model.network(model.normalize(features)[None])
    torch.testing.assert_close(found.logits, expected.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(found.attention[0], expected.attention, atol=1e-6, rtol=0)


def _as_clam(model: CLAMSB, attention_index: int) -> dict[str, torch.Tensor]:
    """``model``'s state dict under CLAM's key names (the adapter's key map in reverse)."""
    reverse = {ours: clam for clam, ours in CLAM_SB_KEYS.items() if not clam.startswith("attention_net.") or
               clam.startswith(("attention_net.0.", f"attention_net.{attention_index}."))}  # fmt: skip
    return rename_keys(model.state_dict(), reverse)


@pytest.mark.parametrize("attention_index", [3, 2])
def test_clam_sb_state_dict_loads_with_its_sizes_and_clams_outputs(tmp_path, clam_forward, attention_index):
    torch.manual_seed(2)
    weights = _as_clam(CLAMSB(20, 3, embed_dim=24, attn_dim=12), attention_index)
    assert f"attention_net.{attention_index}.attention_c.weight" in weights and "classifiers.bias" in weights
    path = tmp_path / "s_0_checkpoint.pt"
    torch.save(weights, path)
    assert detect_format(weights) == "clam_sb"
    model = load_trained(path)
    network = model.network
    assert isinstance(network, CLAMSB) and model.name == "clam_sb" and model.class_names == ("0", "1", "2")
    sizes = (network.in_dim, network.encoder[0].out_features, network.attention.tanh[0].out_features)
    assert sizes + (network.n_classes,) == (20, 24, 12, 3)
    torch.testing.assert_close(network.instance_classifiers[2].bias, weights["instance_classifiers.2.bias"])
    features = torch.randn(17, 20)
    logits, raw = clam_forward(weights, features)
    with torch.no_grad():
        output = network(features[None])
    torch.testing.assert_close(output.logits, logits)
    torch.testing.assert_close(output.attention[0], raw)


def test_a_state_dict_of_no_known_format_is_refused_naming_its_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"backbone.weight": torch.randn(3, 3), "fc.bias": torch.randn(3)}, path)
    with pytest.raises(PathattnError) as error:
        load_trained(path)
    message = str(error.value)
    assert message.startswith(
        f"checkpoint {path} is of no supported format: its first keys are backbone.weight, fc.bias;"
    )
    assert "--checkpoint-format accepts auto or pathattn" in message and all(
        f in message for f in ("pathattn", "hippo", "clam_sb")
    )
    assert "\n" not in message


def test_a_named_format_that_does_not_fit_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(CLAMSB(4, 2, embed_dim=8, attn_dim=4).state_dict(), path)  # pathattn's own names: no format
    with pytest.raises(PathattnError, match="is not a HIPPO AttentionMILModel state dict"):
        load_trained(path, checkpoint_format="hippo")
    clam = tmp_path / "s_0_checkpoint.pt"
    torch.save(_as_clam(CLAMSB(4, 2, embed_dim=8, attn_dim=4), 3), clam)
    with pytest.raises(PathattnError, match=r"is not a checkpoint of 'pathattn train' \(RUN/fold_k"):
        load_trained(clam, checkpoint_format="pathattn")
    with pytest.raises(PathattnError, match="unknown --checkpoint-format 'clam'; use auto, pathattn, hippo, clam_sb"):
        load_trained(clam, checkpoint_format="clam")


def test_a_pathattn_state_without_its_model_spec_is_refused(tmp_path):
    path = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {"feature_mean": torch.zeros(2), "feature_std": torch.ones(2)}}, path)
    with pytest.raises(PathattnError, match=f"checkpoint {path} does not record its model"):
        load_trained(path)


def test_truncated_and_non_checkpoint_files_get_clear_errors(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"encoder.0.weight": torch.randn(64, 64)}, whole)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PathattnError, match=f"cannot read weights file {truncated} .*damaged"):
        load_trained(truncated)
    table = tmp_path / "samples.ckpt"
    table.write_text("slide_id,label\ns1,tumor\n")
    with pytest.raises(PathattnError, match=f"cannot read weights file {table} .*not a PyTorch checkpoint"):
        load_trained(table)
    numbers = tmp_path / "numbers.pt"
    torch.save([1, 2, 3], numbers)
    with pytest.raises(PathattnError, match=f"weights file {numbers} holds no state dict of tensors"):
        load_trained(numbers)
    with pytest.raises(PathattnError, match="not found"):
        load_trained(tmp_path / "missing.ckpt")


def test_scores_are_probabilities_or_a_risk():
    network = create_model("mean_pool", in_dim=IN_DIM, n_classes=3)
    logits = torch.randn(4, 3, dtype=torch.float64)
    probabilities = TrainedModel(network).scores(logits)
    torch.testing.assert_close(probabilities, torch.softmax(logits, dim=-1))
    cox = TrainedModel(network, task="survival", survival_loss="cox").scores(logits)
    torch.testing.assert_close(cox, logits[:, :1])
    hazards = TrainedModel(network, task="survival").scores(logits)
    survival = torch.cumprod(1 - torch.sigmoid(logits), dim=1)
    torch.testing.assert_close(hazards, -survival.sum(dim=1, keepdim=True))
