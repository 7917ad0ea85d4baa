"""Encoders: presets have the published embedding sizes, weights files load strictly, bad names are explained."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file

from pathattn.errors import PathattnError
from pathattn.extract import encoders
from pathattn.extract.encoders import create_encoder, list_encoders
from pathattn.extract.presets import PRESETS, EncoderSpec
from pathattn.io.weights import sha256_file

GIANT_DIMS = {"uni": 1024, "uni2_h": 1536, "gigapath": 1536, "h_optimus_0": 1536, "h_optimus_1": 1536,
              "virchow": 2560, "virchow2": 2560}  # fmt: skip


def _images(size: int = 160, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _state_of(name: str, seed: int, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs).state_dict()


@pytest.fixture
def tiny_virchow(monkeypatch) -> EncoderSpec:
    """A Virchow-like preset on timm's tiny ViT: 2 register tokens, cls+mean pooling, its own mean/std."""
    spec = EncoderSpec(name="tiny_virchow", timm_name="test_vit",
                       kwargs={"num_classes": 0, "global_pool": "", "reg_tokens": 2}, embed_dim=128,
                       mean=(0.7, 0.6, 0.7), std=(0.2, 0.25, 0.2), pool="cls+mean")  # fmt: skip
    monkeypatch.setitem(PRESETS, spec.name, spec)
    return spec


def test_required_presets_are_listed():
    assert {"resnet50_trunc", "uni", "uni2_h", "gigapath", "h_optimus_0", "virchow2"} <= set(list_encoders())
    for spec in PRESETS.values():
        assert spec.description and spec.url and spec.precision in ("fp32", "fp16", "bf16")


@pytest.mark.parametrize("name", sorted(GIANT_DIMS))
def test_giant_presets_on_meta_have_published_sizes(name):
    encoder = create_encoder(name, device="meta")
    out = encoder.model(torch.empty(2, 3, *encoder.input_size, device="meta"))
    assert out.shape == (2, GIANT_DIMS[name]) == (2, encoder.embed_dim)
    assert encoder.input_size == (224, 224) and not encoder.model.training
    assert encoder.weights_sha256 == "random-init" and encoder.weights_file == ""


def test_preset_normalization_overrides_timm():
    assert create_encoder("h_optimus_0", device="meta").mean == (0.707223, 0.578729, 0.703617)
    assert create_encoder("h_optimus_0", device="meta").std == (0.211883, 0.230117, 0.177517)
    assert create_encoder("uni", device="meta").mean == (0.485, 0.456, 0.406)  # timm's default would be 0.5


def test_resnet50_trunc_takes_a_full_resnet50_checkpoint(tmp_path):
    torch.manual_seed(0)
    full = timm.create_model("resnet50", pretrained=False).eval()
    file = tmp_path / "resnet50.pth"
    # conv1.*, layer1-4.*, fc.*; without BatchNorm counters, as in torchvision's ImageNet weights
    torch.save({k: v for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked")}, file)
    encoder = create_encoder("resnet50_trunc", file)
    images = _images(224, batch=1)
    with torch.no_grad():
        out = encoder.model(images)
        x = full.maxpool(full.act1(full.bn1(full.conv1(images))))
        expected = full.layer3(full.layer2(full.layer1(x))).mean(dim=(2, 3))
    assert out.shape == (1, 1024) and encoder.embed_dim == 1024
    assert not any(t.is_meta for t in (*encoder.model.parameters(), *encoder.model.buffers()))
    torch.testing.assert_close(out, expected)
    assert encoder.weights_sha256 == sha256_file(file) and encoder.weights_file == str(file.resolve())


def test_resnet18_l1_grid_pools_layer1_over_a_2x2_grid_of_a_full_checkpoint(tmp_path):
    torch.manual_seed(0)
    full = timm.create_model("resnet18", pretrained=False).eval()
    file = tmp_path / "resnet18.pth"
    torch.save(full.state_dict(), file)
    encoder = create_encoder("resnet18_l1_grid", file)
    images = _images(224, batch=2)
    with torch.no_grad():
        layer1 = full.layer1(full.maxpool(full.act1(full.bn1(full.conv1(images)))))  # (2, 64, 56, 56)
        cells = layer1.unflatten(2, (2, 28)).unflatten(4, (2, 28)).mean(dim=(3, 5))  # (2, 64, 2, 2)
        out = encoder.model(images)
    assert out.shape == (2, 256) == (2, encoder.embed_dim)
    torch.testing.assert_close(out, cells.flatten(1))


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_timm_model_size_and_data_config(name):
    encoder = create_encoder(name)
    assert encoder.spec is None and encoder.input_size == (160, 160)
    assert encoder.mean == (0.5, 0.5, 0.5) and encoder.std == (0.5, 0.5, 0.5)
    with torch.no_grad():
        assert encoder.model(_images()).shape == (2, encoder.embed_dim)


def test_pre_logits_size_is_the_embedding_size():
    encoder = create_encoder("mobilenetv3_small_050")
    with torch.no_grad():
        assert encoder.model(_images(64)).shape == (2, encoder.embed_dim) == (2, 1024)


@pytest.mark.parametrize(
    ("suffix", "wrap"),
    [
        (".pth", lambda sd: sd),
        (".pt", lambda sd: {"state_dict": sd}),
        (".pth", lambda sd: {"model": sd, "epoch": 7}),
        (".pth", lambda sd: {f"module.{k}": v for k, v in sd.items()}),
        (".bin", lambda sd: sd),
        (".safetensors", lambda sd: sd),
    ],
    ids=["raw", "state_dict", "model", "dataparallel", "bin", "safetensors"],
)
def test_loaded_weights_reproduce_the_source_model(tmp_path, suffix, wrap):
    source = create_encoder("test_vit")
    torch.manual_seed(123)
    source.model = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    file = tmp_path / f"w{suffix}"
    content = wrap(source.model.state_dict())
    save_file(content, str(file)) if suffix == ".safetensors" else torch.save(content, file)
    loaded, fresh = create_encoder("test_vit", file), create_encoder("test_vit")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(_images()), source.model(_images()), rtol=0, atol=0)
        assert not torch.allclose(fresh.model(_images()), source.model(_images()))


def test_classifier_of_a_full_timm_checkpoint_is_ignored(tmp_path):
    file = tmp_path / "w.pth"
    torch.save(_state_of("test_resnet", 0), file)  # with fc.weight / fc.bias
    encoder = create_encoder("test_resnet", file)
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder.model(_images()), reference.forward_head(
            reference.forward_features(_images()), pre_logits=True))  # fmt: skip


def test_cls_mean_pooling_skips_register_tokens(tmp_path, tiny_virchow):
    encoder = create_encoder("tiny_virchow")
    assert encoder.mean == tiny_virchow.mean and encoder.std == tiny_virchow.std
    assert encoder.input_size == (160, 160)  # from timm's data config
    with torch.no_grad():
        tokens = encoder.model.trunk.forward_features(_images())
        out = encoder.model(_images())
    assert out.shape == (2, 128) == (2, encoder.embed_dim)
    torch.testing.assert_close(out, torch.cat([tokens[:, 0], tokens[:, 3:].mean(1)], dim=-1))
    file = tmp_path / "trunk.safetensors"
    save_file(encoder.model.trunk.state_dict(), str(file))
    with torch.no_grad():
        torch.testing.assert_close(create_encoder("tiny_virchow", file).model(_images()), out, rtol=0, atol=0)


def test_checkpoint_of_another_architecture_lists_keys(tmp_path):
    file = tmp_path / "resnet.pth"
    torch.save({"state_dict": _state_of("test_resnet", 0, num_classes=0)}, file)
    with pytest.raises(PathattnError) as error:
        create_encoder("test_vit", file)
    message = str(error.value)
    assert message.startswith(f"weights file {file} does not fit encoder 'test_vit': ")
    assert "missing keys (cls_token, pos_embed" in message and "unexpected keys (conv1.0.weight" in message
    assert "… and" in message and message.endswith("choose the matching --encoder") and "\n" not in message


def test_shape_mismatch_is_listed(tmp_path):
    file = tmp_path / "w.pth"
    state = _state_of("test_vit", 0, num_classes=0)
    state["pos_embed"] = state["pos_embed"][:, :50]
    torch.save(state, file)
    with pytest.raises(
        PathattnError, match=r"1 shape mismatch \(pos_embed: file \(1, 50, 64\) vs model \(1, 101, 64\)\)"
    ):
        create_encoder("test_vit", file)


def test_resnet50_trunc_refuses_a_vit_checkpoint(tmp_path):
    file = tmp_path / "vit.bin"
    torch.save(_state_of("test_vit", 0, num_classes=0), file)
    with pytest.raises(PathattnError, match=r"does not fit encoder 'resnet50_trunc': \d+ missing keys \(conv1.weight"):
        create_encoder("resnet50_trunc", file)


def test_missing_weights_file(tmp_path):
    with pytest.raises(PathattnError, match="not found"):
        create_encoder("test_vit", tmp_path / "nope.safetensors")


@pytest.mark.parametrize(("name", "close"), [("resnet5O", "resnet50"), ("UNI2-h", "uni2_h"), ("virchow3", "virchow2")])
def test_unknown_name_suggests_close_names(name, close):
    with pytest.raises(PathattnError) as error:
        create_encoder(name)
    message = str(error.value)
    assert message.startswith(f"unknown encoder '{name}'; did you mean ") and close in message.split("?")[0]
    assert "presets: resnet50_trunc, uni" in message and "any timm model name" in message


def test_hub_without_network_explains_the_offline_route(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PathattnError) as error:
        create_encoder("hf-hub:MahmoodLab/UNI")
    message = str(error.value)
    assert message.startswith("cannot load encoder 'hf-hub:MahmoodLab/UNI' from the Hugging Face Hub")
    assert "--weights FILE" in message and "--encoder" in message and "\n" not in message


def test_token_output_is_refused(monkeypatch):
    monkeypatch.setattr(encoders.timm, "is_model", lambda name: True)
    monkeypatch.setattr(encoders.timm, "create_model", lambda *a, **k: timm.models.create_model(
        "test_vit", pretrained=False, num_classes=0, global_pool=""))  # fmt: skip
    with pytest.raises(PathattnError, match="returns tokens"):
        create_encoder("test_vit_tokens")


def test_random_init_is_seeded_and_leaves_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    first = create_encoder("resnet18").model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    again, other = create_encoder("resnet18").model.state_dict(), create_encoder("resnet18", seed=1).model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])
