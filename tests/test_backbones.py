"""Other backbones: timm feature extractors and EfficientNet-Lite0 with offline ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnseg.errors import WeightsError
from fcnseg.freeze import apply_freeze
from fcnseg.models import build_model
from fcnseg.models.state_files import load_state_file
from fcnseg.models.timm_backbones import lite0_imagenet_file, lite0_to_timm


def test_lite0_key_mapping_reproduces_the_reference_imagenet_logits() -> None:
    timm = pytest.importorskip("timm")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    path = lite0_imagenet_file()
    ref = reference.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(path)
    ).eval()
    mapped = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    mapped.load_state_dict(lite0_to_timm(load_state_file(path)))  # strict: every key placed
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(mapped(x), ref(x), rtol=1e-5, atol=1e-5)


def test_lite0_imagenet_needs_no_network_and_uses_its_preprocessing(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_model("fcn8s_efficientnet_lite0", num_classes=11, weights_backbone="imagenet")
    state = lite0_to_timm(load_state_file(lite0_imagenet_file()))
    torch.testing.assert_close(
        model.backbone.body.state_dict()["conv_stem.weight"], state["conv_stem.weight"]
    )
    x = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close((x - model.mean) / model.std, (x * 255 - 127) / 128)
    assert model(torch.rand(1, 3, 97, 131)).shape == (1, 11, 97, 131)


def test_lite0_mapping_refuses_unknown_keys() -> None:
    with pytest.raises(WeightsError, match="unexpected EfficientNet-Lite0 key _blocks.0._weird"):
        lite0_to_timm({"_blocks.0._weird.weight": torch.zeros(1)})


def test_timm_imagenet_offline_fails_clearly(monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-fcnseg-test")
    with pytest.raises(WeightsError, match="--weights-backbone PATH"):
        build_model("fcn8s_mobilenetv3_large_100", num_classes=3, weights_backbone="imagenet")


def test_timm_weights_from_a_file(tmp_path: Path) -> None:
    import timm

    source = timm.create_model("mobilenetv3_large_100", pretrained=False)
    path = tmp_path / "mnv3.pth"
    torch.save(source.state_dict(), path)
    model = build_model("fcn8s_mobilenetv3_large_100", num_classes=3, weights_backbone=path)
    torch.testing.assert_close(
        model.backbone.body.state_dict()["conv_stem.weight"],
        source.state_dict()["conv_stem.weight"],
    )
    torch.save({"conv_stem.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="does not fit this backbone: missing keys"):
        build_model("fcn8s_mobilenetv3_large_100", num_classes=3, weights_backbone=path)


@pytest.mark.parametrize("mode", ["features", "backbone"])
def test_freezing_a_timm_backbone_keeps_batchnorm_statistics(mode: str) -> None:
    model = build_model("fcn8s_efficientnet_lite0", num_classes=3)
    apply_freeze(model, mode)
    model.train()
    assert all(not p.requires_grad for p in model.backbone.parameters())
    bn = model.backbone.body.bn1
    before = bn.running_mean.clone()
    model(torch.rand(2, 3, 64, 64) * 5)
    assert torch.equal(bn.running_mean, before)  # eval mode: statistics untouched
    head_bn = model.score_fr.bn
    assert head_bn.training  # the head's own BatchNorm still learns


def test_static_same_padding_equals_timm_dynamic_padding() -> None:
    import timm

    from fcnseg.models.timm_backbones import TimmBackbone

    dynamic = timm.create_model(
        "tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3, 4)
    ).eval()
    fixed = TimmBackbone("tf_efficientnet_lite0").eval()
    fixed.body.load_state_dict(dynamic.state_dict())
    assert sum(type(m).__name__ == "StaticSameConv2d" for m in fixed.modules()) == 5
    x = torch.rand(2, 3, 96, 160)  # FCN inputs are always multiples of 32
    with torch.no_grad():
        for a, b in zip(dynamic(x), fixed(x).values(), strict=True):
            torch.testing.assert_close(a, b)
