"""Other backbones: timm feature extractors and EfficientNet-Lite0/1/2 with offline ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnseg.errors import WeightsError
from fcnseg.models import build_model
from fcnseg.models.state_files import load_state_file
from fcnseg.models.timm_backbones import lite_imagenet_file, lite_to_timm, stage_repeats

# Each variant at the resolution its weights were trained at (the reference pads for that size).
LITE_RESOLUTION = {0: 224, 1: 240, 2: 260}


@pytest.mark.parametrize("version", [0, 1, 2])
def test_lite_key_mapping_reproduces_the_reference_imagenet_logits(version: int) -> None:
    timm = pytest.importorskip("timm")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    path = lite_imagenet_file(version)
    ref = reference.EfficientNet.from_pretrained(
        f"efficientnet-lite{version}", weights_path=str(path)
    ).eval()
    mapped = timm.create_model(f"tf_efficientnet_lite{version}", pretrained=False).eval()
    # strict: every key placed, every shape right
    mapped.load_state_dict(lite_to_timm(load_state_file(path), stage_repeats(mapped)))
    size = LITE_RESOLUTION[version]
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = mapped(x)
        torch.testing.assert_close(out, ref(x), rtol=1e-5, atol=1e-5)
    assert out.shape == (2, 1000)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_lite_imagenet_needs_no_network_and_uses_its_preprocessing(
    monkeypatch, version: int
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = f"fcn8s_efficientnet_lite{version}"
    model = build_model(name, num_classes=11, weights_backbone="imagenet")
    state = load_state_file(lite_imagenet_file(version))
    state = lite_to_timm(state, stage_repeats(model.backbone.body))
    own = model.backbone.body.state_dict()
    for key in ("conv_stem.weight", "blocks.5.0.conv_pw.weight"):
        torch.testing.assert_close(own[key], state[key])
    x = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close((x - model.mean) / model.std, (x * 255 - 127) / 128)
    assert model(torch.rand(1, 3, 97, 131)).shape == (1, 11, 97, 131)


def test_lite_mapping_refuses_unknown_keys_and_other_variants() -> None:
    with pytest.raises(WeightsError, match="unexpected EfficientNet-Lite key _blocks.0._weird"):
        lite_to_timm({"_blocks.0._weird.weight": torch.zeros(1)}, (1,))
    lite1 = load_state_file(lite_imagenet_file(1))
    with pytest.raises(WeightsError, match="21 blocks, this backbone has 16"):
        lite_to_timm(lite1, (1, 2, 2, 3, 3, 4, 1))  # Lite0's stages
    with pytest.raises(WeightsError, match="21 blocks, this backbone has 16"):
        build_model(
            "fcn8s_efficientnet_lite0", num_classes=3, weights_backbone=lite_imagenet_file(1)
        )


def test_lite2_weights_into_lite1_are_refused_by_shape() -> None:
    # Same block count (21) but wider: the shapes tell them apart.
    with pytest.raises(WeightsError, match="does not fit this backbone: wrong shapes"):
        build_model(
            "fcn8s_efficientnet_lite1", num_classes=3, weights_backbone=lite_imagenet_file(2)
        )


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
    model.freeze(mode)
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
