"""Crafted files, odd values and bad luck (a full disk, Ctrl-C, no memory): one clear line each.

Every test here failed before the fix it names (issue 22's medium and low defects).
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import train_args

from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from fcnseg.cli import main
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


# -- training ------------------------------------------------------------------------------------

PROGRESS = re.compile(r"^\s*$|\d+/\d+ \[")  # a progress bar's line, or what erases it


def _error_lines(capsys) -> list[str]:
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    return [line for line in lines if not PROGRESS.search(line)]


class FillingDisk(io.RawIOBase):
    """A file whose disk fills after 4 KiB: later writes fail with ``error`` (ENOSPC, EDQUOT).

    PyTorch's zip writer then loses the errno and says "unexpected pos 704 vs 598".
    """

    def __init__(self, error: int) -> None:
        self.error, self.written = error, 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.written + len(b) > 4096:
            raise OSError(self.error, os.strerror(self.error))
        self.written += len(b)
        return len(b)


def test_a_checkpoint_write_cut_short_by_a_full_disk_is_one_line(
    tiny_data, tmp_path, monkeypatch, capsys
) -> None:
    # M2: PyTorch's zip writer says only "unexpected pos 704 vs 598" when a write comes up short;
    # that was a RuntimeError traceback. Here the real torch.save writes into a disk that fills.
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        real_save(obj, FillingDisk(errno.ENOSPC), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=0))
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "1", "--num-vis", "0")) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and err[0].startswith("fcnseg train: error: "), err
    assert "checkpoint_" in err[0] and "no space left on the device" in err[0]
    assert not list(run.glob(".*.tmp"))


def test_a_write_cut_short_without_a_full_disk_says_what_to_check(tmp_path) -> None:
    from fcnseg.files import OutputError, atomic_write

    state = {"w": torch.ones(3000)}
    with pytest.raises(OutputError, match="cut short: is the disk full, or a quota"):
        atomic_write(tmp_path / "m.pt", lambda tmp: torch.save(state, FillingDisk(errno.EDQUOT)))
    assert not list(tmp_path.iterdir())


def test_resuming_with_fewer_epochs_than_done_is_refused(tiny_data, tmp_path, capsys) -> None:
    # --resume RUN --epochs 1 on a 2-epoch run trained nothing and rewrote config.yaml silently.
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--num-vis", "0")) == 0
    before = {p: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "already done 2 epochs" in err[0], err
    assert {p: p.read_bytes() for p in before} == before


def test_a_relative_data_path_resumes_from_another_folder(tiny_data, tmp_path, monkeypatch) -> None:
    # config.yaml kept "data" as typed; --resume from elsewhere looked for it there.
    import fcnseg

    monkeypatch.chdir(tiny_data.parent)
    options = dict(weights_backbone="none", fc_channels=8, batch_size=4, workers=0, num_vis=0)
    fcnseg.train(data=tiny_data.name, out="run", epochs=1, **options)
    saved = yaml.safe_load((tiny_data.parent / "run" / "config.yaml").read_text())
    assert Path(saved["data"]) == tiny_data.resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert fcnseg.train(resume=tiny_data.parent / "run", epochs=2).epochs_done == 2


def test_masks_without_a_labelled_pixel_say_so(tmp_path, capsys) -> None:
    # All-void masks gave "the loss became nan ...; lower --lr".
    from PIL import Image

    from fcnseg.data.synthetic import make_synthetic_dataset
    from fcnseg.engine import NonFiniteLossError, train_one_epoch

    data = make_synthetic_dataset(tmp_path / "d", counts={"train": 4, "val": 2}, size=(32, 32))
    for mask in (data / "train" / "masks").iterdir():
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(mask)
    assert main(train_args(data, tmp_path / "run", "--epochs", "1")) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "no labelled pixels" in err[0], err
    assert not (tmp_path / "run").exists()
    # The same words when one batch of otherwise fine data is all void.
    logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    void = torch.full((1, 4, 4), 255)
    loss = torch.nn.CrossEntropyLoss(ignore_index=255)
    opt = torch.optim.SGD([logits], lr=0.1)
    with pytest.raises(NonFiniteLossError, match="no labelled pixels"):
        train_one_epoch(lambda b: b, [(logits, void)], opt, loss)


def test_json_metrics_hold_null_not_nan(tmp_path) -> None:
    # With no labelled pixel the metrics are NaN, which json.dumps wrote as invalid JSON.
    from fcnseg.evaluation import EvalResult, save_json
    from fcnseg.metrics import metrics_from_confusion

    info = _info(3)
    cm = np.zeros((3, 3), dtype=np.int64)
    metrics = metrics_from_confusion(cm, info.class_names)
    metrics.update(num_images=1, tta={"scales": [1.0], "flip": False})
    result = EvalResult(metrics, cm, info, [])
    save_json(result, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert data["mean_iu"] is None and data["per_class_iu"] == {"c0": None, "c1": None, "c2": None}


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 1638400000000 bytes. Error code 12 (Cannot allocate "
            "memory)"
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        MemoryError(),
    ],
)
def test_a_failed_allocation_is_the_out_of_memory_line(monkeypatch, capsys, error) -> None:
    # M5: PyTorch reports a failed allocation as a RuntimeError, not MemoryError: a traceback.
    def summary_rows(num_classes):
        raise error

    monkeypatch.setattr("fcnseg.commands.models.summary_rows", summary_rows)
    assert main(["models", "--summary"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "fcnseg models: error: out of memory (try a smaller --batch-size, --tile or image)"
    ]


def test_other_runtime_errors_still_show_their_traceback(monkeypatch) -> None:
    def summary_rows(num_classes):
        raise RuntimeError("a bug")

    monkeypatch.setattr("fcnseg.commands.models.summary_rows", summary_rows)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["models", "--summary"])


def test_ctrl_c_while_the_modules_load_is_one_line() -> None:
    # M11: Ctrl-C in the first seconds (importing torch) printed a KeyboardInterrupt traceback.
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fcnseg", "models"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    time.sleep(0.5)  # python is up, torch is still loading (seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal (a very fast machine)")
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [err.strip()] and "interrupted" in err, err


def test_a_keyboard_interrupt_while_building_the_parser_is_one_line(monkeypatch, capsys) -> None:
    def build_parser():
        raise KeyboardInterrupt

    monkeypatch.setattr("fcnseg.cli.build_parser", build_parser)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "fcnseg: interrupted\n"


# -- the Python API --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.array([[1, "a"]], dtype=object), "array of type object"),
        (np.zeros((4, 4, 3), dtype="U1"), "array of type <U1"),
        (np.zeros((4, 4, 3), dtype=[("a", "u1")]), "array of type"),
        (torch.empty(3, 4, 4, device="meta"), "a meta tensor"),
        (torch.zeros(3, 4, 4).to_sparse(), "sparse"),
        ("", "empty path"),
    ],
)
def test_images_the_api_cannot_read_are_one_line(image, words) -> None:
    from fcnseg.inference.inputs import to_rgb, to_tensor

    for convert in (to_tensor, to_rgb):
        with pytest.raises(FcnsegError, match=re.escape(words)):
            convert(image)


@pytest.mark.parametrize("dtype", [">u2", ">f4", ">u1", "<u2"])
def test_arrays_of_either_byte_order_are_read(dtype) -> None:
    # Big-endian arrays (from FITS or TIFF readers) were a raw ValueError from torch.
    from fcnseg.inference.inputs import to_tensor

    full = {"u1": 255, "u2": 65535, "f4": 1.0}[dtype[1:]]
    a = np.zeros((2, 3, 3), dtype=dtype)
    a[0, 0] = full
    t = to_tensor(a)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0] and float(t[:, 1:].abs().max()) == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.train(config=5),
        lambda f: f.train(config=""),
        lambda f: f.train(resume=5),
    ],
)
def test_train_refuses_bad_arguments_in_one_line(call) -> None:
    import fcnseg

    with pytest.raises(FcnsegError) as exc:
        call(fcnseg)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "options",
    [
        {"lr": float("nan")},
        {"momentum": float("nan")},
        {"input_scale": float("nan"), "model": "fcn8s_efficientnet_lite0"},
        {"scale_range": (float("nan"), 1.0)},
    ],
)
def test_nan_and_inf_fail_every_range_check(options) -> None:
    # M6: `--input-scale nan` passed the check (nan < 0.1 is False), then a ValueError traceback.
    from fcnseg.training import config_from

    with pytest.raises(FcnsegError, match=f"--{next(iter(options)).replace('_', '-')} must be"):
        config_from(data="d", out="o", **options)
