"""ONNX files describe themselves: classes, palette, ignore index and the input convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli import main
from fcnseg.data.info import DatasetInfo
from fcnseg.models import build_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

INFO = DatasetInfo(
    "streets",
    ("road", "car", "person"),
    ((128, 64, 128), (255, 0, 255), (255, 160, 0)),
    ignore_index=200,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("fcn32s_vgg16", num_classes=3, fc_channels=8)
    for name, p in model.named_parameters():
        if "score" in name and p.ndim == 4:
            nn.init.normal_(p, std=0.1)  # non-zero logits, so that argmax means something
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, INFO)
    return path


def test_exported_model_carries_classes_palette_and_input_convention(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == props  # onnxruntime reads the same
    meta = {k: json.loads(v) for k, v in props.items()}
    assert meta["class_names"] == ["road", "car", "person"]
    assert meta["palette"] == [[128, 64, 128], [255, 0, 255], [255, 160, 0]]
    assert meta["ignore_index"] == 200 and meta["dataset"] == "streets"
    assert meta["arch"] == {"name": "fcn32s_vgg16", "num_classes": 3, "fc_channels": 8}
    convention = meta["input"]
    assert convention["layout"] == "NCHW" and convention["channels"] == "RGB"
    assert convention["range"] == [0.0, 1.0] and convention["dtype"] == "float32"
    norm = convention["normalisation"]
    assert "inside" in norm["applied"]
    np.testing.assert_allclose(norm["mean"], [0.485, 0.456, 0.406], atol=1e-6)
    np.testing.assert_allclose(norm["std"], [0.229, 0.224, 0.225], atol=1e-6)
    # The convention, followed literally, gives the PyTorch model's classes.
    from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint

    model, _ = model_from_checkpoint(load_checkpoint(checkpoint), checkpoint)
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    (logits,) = session.run([meta["output"]["name"]], {convention["name"]: x})
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    assert logits.shape == (1, 3, 37, 53)
    assert (logits.argmax(1) == expected).mean() > 0.99


def test_export_without_a_description_still_states_the_input(tmp_path: Path) -> None:
    from fcnseg.inference.export import export_onnx

    model = build_model("fcn32s_vgg16", num_classes=2, fc_channels=8)
    export_onnx(model, tmp_path / "m.onnx")
    keys = {p.key for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert {"input", "output", "arch", "fcnseg_version"} <= keys and "class_names" not in keys
