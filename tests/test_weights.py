"""Backbone weights: fc6/fc7 conversion, loading from a file and the cache, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision

from fcnseg.errors import WeightsError
from fcnseg.models import build_model
from fcnseg.models.vgg import imagenet_cache_path


def test_conv_head_reproduces_torchvision_linear_classifier(
    vgg16_reference: torchvision.models.VGG, vgg16_weights_file: Path
) -> None:
    model = build_model("fcn32s_vgg16", num_classes=2, weights_backbone=vgg16_weights_file).eval()
    image = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        fc7 = model.neck(model.encode(image)["pool5"])  # (1, 4096, 7, 7)
        normalised = (image - model.mean) / model.std
        flat = torch.flatten(vgg16_reference.avgpool(vgg16_reference.features(normalised)), 1)
        ref = vgg16_reference.classifier[:5](flat)  # fc6, relu, dropout, fc7, relu
    # On a 224x224 input, the centre of the 7x7 map sees exactly the 7x7 pool5 the Linear layer saw.
    torch.testing.assert_close(fc7[:, :, 3, 3], ref, rtol=1e-4, atol=1e-5)


def test_weights_file_fills_trunk_and_fc_layers(vgg16_reference, vgg16_weights_file: Path) -> None:
    model = build_model("fcn8s_vgg16", num_classes=3, weights_backbone=str(vgg16_weights_file))
    ref = vgg16_reference.state_dict()
    torch.testing.assert_close(model.backbone.body["28"].weight, ref["features.28.weight"])
    torch.testing.assert_close(model.neck.fc6.weight.flatten(1), ref["classifier.0.weight"])
    torch.testing.assert_close(model.neck.fc7.bias, ref["classifier.3.bias"])


def test_none_means_random_init(vgg16_reference) -> None:
    model = build_model("fcn32s_vgg16", num_classes=2, weights_backbone="none")
    assert not torch.equal(model.backbone.body["0"].weight, vgg16_reference.features[0].weight)


def test_imagenet_offline_without_cache_fails_clearly(offline: Path) -> None:
    with pytest.raises(WeightsError) as err:
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone="imagenet")
    message = str(err.value)
    assert "--weights-backbone" in message and "vgg16-397923af.pth" in message
    assert str(offline) in message  # says where the cache would be


def test_imagenet_uses_torch_hub_cache(offline: Path, vgg16_reference, vgg16_weights_file) -> None:
    cache = imagenet_cache_path()
    assert str(cache).startswith(str(offline))
    cache.parent.mkdir(parents=True)
    cache.symlink_to(vgg16_weights_file)
    model = build_model("fcn32s_vgg16", num_classes=2, weights_backbone="imagenet")
    torch.testing.assert_close(model.backbone.body["0"].weight, vgg16_reference.features[0].weight)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone=tmp_path / "nope.pth")


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match=r"garbage\.pth: cannot be read"):
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone=path)


def test_other_architecture_names_the_wrong_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(
        WeightsError, match=r"missing keys features\.0\.weight.*unexpected keys conv1"
    ):
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone=path)


def test_wrong_shape_is_named(tmp_path: Path, vgg16_reference) -> None:
    state = dict(vgg16_reference.state_dict())
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "gray.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"wrong shapes features\.0\.weight \(64, 1, 3, 3\)"):
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone=path)


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(_Exploit.target),))


def test_malicious_pickle_is_refused_not_executed(tmp_path: Path) -> None:
    _Exploit.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Exploit()}, f)
    with pytest.raises(WeightsError, match="cannot be read"):
        build_model("fcn8s_vgg16", num_classes=3, weights_backbone=path)
    assert not (tmp_path / "pwned").exists()
