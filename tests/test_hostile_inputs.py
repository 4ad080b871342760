"""Crafted files, odd values and bad luck (a full disk, Ctrl-C, no memory): one clear line each.

Every test here failed before the fix it names (issue 22's medium and low defects).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from fcnseg.data.info import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.models import build_model


def _info(n: int) -> DatasetInfo:
    return DatasetInfo.from_dict({"classes": [f"c{i}" for i in range(n)]})


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A valid checkpoint record (fcn32s, 3 classes, narrow fc6/fc7), as load_checkpoint reads it."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("fcn32s_vgg16", num_classes=3, fc_channels=4), _info(3))
    return torch.load(path, weights_only=True)


def _crafted(tmp_path: Path, record: dict, **changes) -> Path:
    path = tmp_path / "crafted.pt"
    torch.save({**record, **changes}, path)
    return path


@pytest.mark.parametrize(
    "arch",
    [
        "fcn32s_vgg16",
        ["fcn32s_vgg16"],
        {"name": 5, "num_classes": 3},
        {"name": "fcn32s_vgg16", "num_classes": 10**9, "fc_channels": 4},
        {"name": "fcn32s_vgg16", "num_classes": "3", "fc_channels": 4},
        {"name": "fcn32s_vgg16", "num_classes": 3, "fc_channels": 10**9},
        {"name": "fcn32s_vgg16", "num_classes": 3, "fc_channels": [4]},
    ],
)
def test_a_crafted_arch_is_refused_before_anything_is_built(tmp_path, tiny_ckpt, arch) -> None:
    # M4: 'arch' not a dict was a TypeError traceback; num_classes=10**9 tried to allocate it.
    path = _crafted(tmp_path, tiny_ckpt, arch=arch)
    with pytest.raises(FcnsegError, match="'arch'"):
        model_from_checkpoint(load_checkpoint(path), path)


def test_a_state_that_is_not_tensors_is_refused(tmp_path, tiny_ckpt) -> None:
    path = _crafted(tmp_path, tiny_ckpt, model={"w": [1, 2, 3]})
    with pytest.raises(FcnsegError, match="tensor names to tensors"):
        load_checkpoint(path)


def test_class_names_must_match_the_model_outputs(tmp_path, tiny_ckpt) -> None:
    # A checkpoint naming 11 classes for a 3-output model was accepted (labels named wrongly).
    path = _crafted(tmp_path, tiny_ckpt, dataset=_info(11).to_dict())
    with pytest.raises(FcnsegError, match="names 11 classes but the model scores 3"):
        model_from_checkpoint(load_checkpoint(path), path)
    model, info = model_from_checkpoint(load_checkpoint(_crafted(tmp_path, tiny_ckpt)))
    assert info.num_classes == model.arch["num_classes"] == 3


def test_the_pickled_code_message_keeps_its_point(tmp_path) -> None:
    # It was cut at 200 characters of PyTorch's preamble, before saying what was wrong.
    evil, marker = tmp_path / "evil.pt", tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "fcnseg-checkpoint", "x": Exploit()}, evil)
    with pytest.raises(FcnsegError) as exc:
        load_checkpoint(evil)
    message = str(exc.value)
    assert "pickled code (not allowed: weights_only)" in message
    assert "system" in message and "\n" not in message
    assert not marker.exists()
    plain = tmp_path / "plain.pickle"
    plain.write_bytes(pickle.dumps({"format": "fcnseg-checkpoint"}))
    with pytest.raises(FcnsegError, match="not a readable fcnseg checkpoint"):
        load_checkpoint(plain)


@pytest.mark.parametrize("path", [None, 5, "", "  "])
def test_load_takes_only_a_path_or_a_name(path) -> None:
    import fcnseg

    with pytest.raises(FcnsegError, match="checkpoint must be a file path"):
        fcnseg.load(path, device="cpu")


@pytest.mark.parametrize("n", [256, 300])
def test_more_classes_than_8_bit_masks_hold_is_one_clear_line(n) -> None:
    # M7: 300 classes without a palette were PIL's palette ValueError; 256 said "'ignore_index'
    # must be an integer in 256..255".
    with pytest.raises(FcnsegError, match=f"{n} classes; at most 255 are supported"):
        _info(n)
    assert _info(255).ignore_index == 255


@pytest.mark.parametrize("name", ["car\nfake line", "car\rx", "car\x1b[31m", "car\u2028x"])
def test_a_class_name_with_control_characters_is_refused(name) -> None:
    # A newline in a name injected a fake line into the verify-data audit.
    with pytest.raises(FcnsegError, match="control characters"):
        DatasetInfo.from_dict({"classes": ["road", name]})
    assert DatasetInfo.from_dict({"classes": ["road", "Straße café"]}).num_classes == 2


def test_the_duplicate_key_check_is_linear(tmp_path) -> None:
    # 40,000 keys took 20 s (each key compared with all before it).
    import time

    from fcnseg.data.info import load_description

    keys = "\n".join(f"k{i}: {i}" for i in range(40_000))
    path = tmp_path / "dataset.yaml"
    path.write_text(f"classes: [a, b]\nnotes:\n  - x\n{keys}\n")
    t0 = time.perf_counter()
    with pytest.raises(FcnsegError, match="unknown key"):
        load_description(path)
    assert time.perf_counter() - t0 < 8  # seconds; about 1 s here, 20 s before
    path.write_text("classes: [a, b]\nname: x\nname: y\n")
    with pytest.raises(FcnsegError, match="'name' given twice at line 3"):
        load_description(path)
