"""``--backend openvino`` and ``--precision int8``: labels agree with PyTorch within tolerances
that hold on any CPU; each missing piece (package, instruction set, calibration data) is one line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from agreement import clear_pixels
from PIL import Image
from test_backends import scored
from test_export_cache import Tiny, loaded

from fcnseg.errors import FcnsegError
from fcnseg.inference import backends, quantize
from fcnseg.inference.backends import load_backend, resolve_backend
from fcnseg.inference.precision import cpu_bf16_feature
from fcnseg.models import build_model

CPU = torch.device("cpu")
needs_openvino = pytest.mark.skipif(
    not (backends.openvino_available() and backends.nncf_available()),
    reason="OpenVINO/NNCF not installed (pip install 'fcnseg[openvino]')",
)


def margin_agreement(got: torch.Tensor, want: torch.Tensor, margin: float) -> float:
    """Share of pixels with equal argmax among those whose top two ``want`` scores (logits here:
    int8's differences are far above a probability margin) are more than ``margin`` apart."""
    clear = torch.from_numpy(clear_pixels(want, margin))
    assert clear.float().mean() > 0.3, "too few clear pixels to compare"
    return float((got.argmax(1) == want.argmax(1))[clear].float().mean())


@pytest.fixture(scope="module")
def small_vgg() -> torch.nn.Module:
    torch.manual_seed(0)
    return scored(build_model("fcn8s_vgg16", num_classes=5, fc_channels=32))


@pytest.fixture(scope="module")
def small_onnx(small_vgg, tmp_path_factory) -> Path:
    from fcnseg.inference.export import export_onnx

    path = tmp_path_factory.mktemp("ov") / "small.onnx"
    export_onnx(small_vgg, path)
    return path


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.rand(2, 3, 61, 83, generator=gen)


@needs_openvino
def test_openvino_fp32_matches_torch(small_vgg, small_onnx, images) -> None:
    from fcnseg.inference.openvino_backend import OpenVinoModel, compile_model

    runner = OpenVinoModel(compile_model(small_onnx, "fp32"), 5)
    with torch.no_grad():
        want = small_vgg(images)
    got = runner(images)
    assert got.dtype == torch.float32 and got.shape == want.shape == (2, 5, 61, 83)
    assert want.abs().max() > 0.05
    # OpenVINO's default on AVX512-BF16/AMX CPUs is bf16: fp32 has to be asked for, and is.
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
    assert margin_agreement(got, want, 1e-2) > 0.999


@needs_openvino
@pytest.mark.skipif(cpu_bf16_feature() is None, reason="this CPU has no AVX512-BF16/AMX")
def test_openvino_bf16_agrees_with_torch(small_vgg, small_onnx, images) -> None:
    from fcnseg.inference.openvino_backend import OpenVinoModel, compile_model

    runner = OpenVinoModel(compile_model(small_onnx, "bf16"), 5)
    assert "bfloat16" in str(runner.compiled.get_property("INFERENCE_PRECISION_HINT"))
    with torch.no_grad():
        want = small_vgg(images)
    assert margin_agreement(runner(images), want, 0.1 * float(want.std())) > 0.97


@needs_openvino
def test_int8_quantized_export_agrees_with_torch(small_vgg, small_onnx, images) -> None:
    from fcnseg.inference.openvino_backend import OpenVinoModel, compile_model

    gen = torch.Generator().manual_seed(4)
    crops = [torch.rand(1, 3, 64, 64, generator=gen).numpy() for _ in range(8)]
    runner = OpenVinoModel(compile_model(quantize.quantize(small_onnx, crops), "int8"), 5)
    with torch.no_grad():
        want = small_vgg(images)
    got = runner(images)
    assert got.shape == want.shape
    assert margin_agreement(got, want, 0.2 * float(want.std())) > 0.9


def _calibration(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def small_calibration(monkeypatch) -> None:
    monkeypatch.setattr(quantize, "DEFAULT_CROPS", 4)
    monkeypatch.setattr(quantize, "CROP", 32)


@needs_openvino
def test_int8_is_cached_checked_and_rebuilt_when_its_weights_change(
    tmp_path: Path, small_calibration, monkeypatch, capsys
) -> None:
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    calib = _calibration(tmp_path / "calib")
    runner = load_backend(model, "openvino", precision="int8", checkpoint=ckpt, calibration=calib)
    (xml,) = tmp_path.glob("*.int8.xml")
    assert xml.with_suffix(".bin").is_file() and len(list(tmp_path.glob("*.onnx"))) == 1
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert margin_agreement(runner(x), model(x), 0.3) > 0.9

    def no_quantization(*args, **kwargs):
        raise AssertionError("quantized again although the cached int8 model is current")

    monkeypatch.setattr(quantize, "quantize", no_quantization)
    again = load_backend(model, "openvino", precision="int8", checkpoint=ckpt, calibration=calib)
    torch.testing.assert_close(again(x), runner(x))
    # Another model's weights under this name: not used, quantized again with one line.
    monkeypatch.undo()
    monkeypatch.setattr(quantize, "DEFAULT_CROPS", 4)
    monkeypatch.setattr(quantize, "CROP", 32)
    bin_ = xml.with_suffix(".bin")
    data = bytearray(bin_.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, still readable: only the digest tells
    bin_.write_bytes(bytes(data))
    capsys.readouterr()
    load_backend(model, "openvino", precision="int8", checkpoint=ckpt, calibration=calib)
    assert "is not the one it was written with): quantizing again" in capsys.readouterr().err
    # New calibration images: a new key; the old int8 model of this checkpoint is removed.
    shutil.copy(calib / "0.png", calib / "3.png")
    load_backend(model, "openvino", precision="int8", checkpoint=ckpt, calibration=calib)
    assert len(list(tmp_path.glob("*.int8.xml"))) == len(list(tmp_path.glob("*.int8.bin"))) == 1


@needs_openvino
def test_int8_calibrates_on_the_recorded_training_data_or_asks_for_a_folder(
    tmp_path: Path, small_calibration
) -> None:
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    with pytest.raises(FcnsegError, match="pass --calibration DIR") as err:
        load_backend(model, "openvino", precision="int8", checkpoint=ckpt)
    assert "\n" not in str(err.value)
    with pytest.raises(FcnsegError, match="--calibration .*: folder not found"):
        load_backend(model, "openvino", precision="int8", calibration=tmp_path / "none")
    with pytest.raises(FcnsegError, match="no images in it"):
        load_backend(model, "openvino", precision="int8", calibration=tmp_path)
    root = tmp_path / "data"
    for split in ("train", "test"):
        _calibration(root / f"images_prepped_{split}", 2)
        masks = root / f"annotations_prepped_{split}"
        masks.mkdir()
        for i in range(2):
            Image.fromarray(np.zeros((40, 48), np.uint8)).save(masks / f"{i}.png")
    model.training_data = str(root)
    assert quantize.calibration_images(model, None) == sorted(
        (root / "images_prepped_train").glob("*.png")
    )


def test_refusals_are_one_line(tmp_path: Path, monkeypatch) -> None:
    """Simulated absence of each piece, so these run wherever the extra is installed or not."""
    cases = [
        (("torch", "int8"), "int8 runs on --backend openvino"),
        (
            ("onnxruntime", "int8"),
            "onnxruntime runs fp32 only; for --precision int8 use --backend openvino",
        ),
        (("onnxruntime", "bf16"), "use --backend torch or openvino"),
    ]
    for (backend, precision), message in cases:
        with pytest.raises(FcnsegError, match=message):
            resolve_backend(backend, precision, CPU)
    with pytest.raises(FcnsegError, match="CPU only"):
        resolve_backend("openvino", "fp32", torch.device("cuda"))
    with pytest.raises(FcnsegError, match="precision must be one of fp32, bf16, int8"):
        resolve_backend("auto", "fp16", CPU)
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    with pytest.raises(
        FcnsegError,
        match=r"^--backend openvino needs the openvino package: pip install 'fcnseg\[openvino\]'$",
    ):
        resolve_backend("openvino", "fp32", CPU)
    with pytest.raises(FcnsegError, match=r"^int8 quantization needs the openvino package"):
        resolve_backend("auto", "int8", CPU, tmp_path / "model.pt")
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(backends, "nncf_available", lambda: False)
    with pytest.raises(FcnsegError, match=r"^--precision int8 needs the nncf package"):
        resolve_backend("openvino", "int8", CPU)
    # bf16 where the CPU would only emulate it: refused for OpenVINO as for torch.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr("fcnseg.inference.precision.platform.machine", lambda: "x86_64")
    with pytest.raises(FcnsegError, match="neither AVX512-BF16 nor AMX"):
        load_backend(Tiny(0), "openvino", precision="bf16")


@needs_openvino
def test_int8_warns_without_vnni_or_amx(
    tmp_path: Path, small_calibration, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    model = Tiny(0).eval()
    load_backend(model, "openvino", precision="int8", calibration=_calibration(tmp_path / "c"))
    assert "has neither VNNI nor AMX, so int8 gains less" in capsys.readouterr().err


@needs_openvino
def test_api_runs_openvino_and_auto_picks_by_precision(tmp_path: Path) -> None:
    """``fcnseg.load`` accepts the backend and precision (predict, evaluate, app, video go
    through it); its labels agree with torch's."""
    import fcnseg
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.info import DatasetInfo

    torch.manual_seed(0)
    model = build_model("fcn32s_vgg16", num_classes=3, fc_channels=8)
    with torch.no_grad():
        model.score_fr.weight.normal_(std=0.1)
    info = DatasetInfo("three", ("a", "b", "c"), ((0, 0, 0), (9, 9, 9), (99, 99, 99)))
    ckpt = tmp_path / "run" / "model.pt"
    ckpt.parent.mkdir()
    save_checkpoint(ckpt, model, info)
    image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    by_torch = fcnseg.load(ckpt, device="cpu", backend="torch")
    by_ov = fcnseg.load(ckpt, device="cpu", backend="openvino")
    assert by_ov.backend == "openvino" and "openvino" in repr(by_ov)
    assert (by_torch.predict(image) == by_ov.predict(image)).mean() > 0.99
    assert resolve_backend("auto", "int8", CPU, ckpt) == "openvino"
    assert resolve_backend("auto", "fp32", CPU, ckpt) == backends.AUTO_ORDER["fp32"][0]
    assert os.path.exists(backends.onnx_cache_path(ckpt))


TELEMETRY_PROBE = """
import socket, sys, time
hosts = []
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: (hosts.append(host), real(host, *a, **k))[1]
from fcnseg.inference.openvino_backend import import_openvino
import_openvino()
import nncf  # NNCF reports through the same telemetry
time.sleep(1.5)  # the report is sent from a thread
print(sorted(set(hosts)))
"""


@needs_openvino
def test_openvino_is_imported_without_telemetry() -> None:
    """``import openvino`` alone reports to Google Analytics unless the user's home holds a
    consent file saying no; fcnseg's import sends nothing (the app's browser test caught it)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    proc = subprocess.run([sys.executable, "-c", TELEMETRY_PROBE], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
