"""Inference backends agree with PyTorch; the ONNX cache never goes stale; bf16 is refused where
the CPU would only emulate it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from agreement import assert_labels_agree
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.inference import (
    autocast,
    backends,
    class_scores,
    export_cache,
    predict_batch,
    predict_labels,
    prepare,
)
from fcnseg.inference.backends import (
    build_onnx_model,
    load_backend,
    onnx_cache_path,
    resolve_backend,
)
from fcnseg.inference.precision import cpu_bf16_feature
from fcnseg.models import build_model

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


def dataset1_dir() -> Path | None:
    """dataset1 in a ``shared/datasets`` folder beside any parent of this checkout."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "datasets" / "dataset1"
        if candidate.is_dir():
            return candidate
    return None


def scored(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with non-zero score layers, so logits depend on every layer (not all zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def small_vgg() -> nn.Module:
    torch.manual_seed(0)
    return scored(build_model("fcn8s_vgg16", num_classes=5, fc_channels=32))


@pytest.fixture(scope="module")
def small_ort(small_vgg: nn.Module) -> nn.Module:
    return build_onnx_model(small_vgg)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 45, 61), (1, 3, 97, 131), (3, 3, 64, 32)])
def test_onnxruntime_logits_match_torch_on_odd_sizes(small_vgg, small_ort, shape) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = small_vgg(x)
    got = small_ort(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == expected.shape == (shape[0], 5, *shape[2:])
    assert expected.abs().max() > 0.05  # the comparison is not between zeros
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_channels_last_model_exports(small_vgg) -> None:
    """``prepare()`` leaves the model channels-last, which torch.export alone cannot export."""
    import copy

    model = prepare(copy.deepcopy(small_vgg), CPU)
    x = torch.rand(3, 3, 40, 50)
    with torch.no_grad():
        torch.testing.assert_close(build_onnx_model(model)(x), model(x), atol=1e-4, rtol=1e-4)
    assert model.score_fr.weight.is_contiguous(memory_format=torch.channels_last)  # left as it was


def test_onnxruntime_runs_tiles_and_tta_like_torch(small_vgg, small_ort) -> None:
    image = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(2))
    torch_model = prepare(small_vgg, CPU)
    for kwargs in ({}, {"scales": (0.75, 1.25), "flip": True}):
        got = predict_labels(small_ort, image, tile=48, overlap=16, **kwargs)
        want = predict_labels(torch_model, image, tile=48, overlap=16, **kwargs)
        assert (got == want).mean() > 0.999, kwargs
    scores = class_scores(small_ort, image[None], scales=(1.0, 0.5), flip=True)
    torch.testing.assert_close(
        scores,
        class_scores(torch_model, image[None], scales=(1.0, 0.5), flip=True),
        atol=1e-4,
        rtol=0,
    )


def without_openvino(monkeypatch) -> None:
    """As where ``fcnseg[openvino]`` is not installed (``auto`` would pick OpenVINO first)."""
    monkeypatch.setattr(backends, "openvino_available", lambda: False)


def test_resolve_backend(small_vgg, tmp_path: Path, monkeypatch) -> None:
    without_openvino(monkeypatch)
    ckpt = _checkpoint(small_vgg, tmp_path / "run")
    assert resolve_backend("torch", "fp32", CPU, ckpt) == "torch"
    assert resolve_backend("auto", "fp32", CPU, ckpt) == "onnxruntime"
    assert resolve_backend("auto", "fp32", CPU) == "torch"  # no place to cache the export
    assert resolve_backend("auto", "bf16", CPU, ckpt) == "torch"
    assert resolve_backend("auto", "fp32", torch.device("cuda"), ckpt) == "torch"
    with pytest.raises(FcnsegError, match="fp32 only"):
        resolve_backend("onnxruntime", "bf16", CPU)
    with pytest.raises(FcnsegError, match="CPU only"):
        resolve_backend("onnxruntime", "fp32", torch.device("cuda"))
    with pytest.raises(FcnsegError, match="must be one of auto, torch, onnxruntime"):
        resolve_backend("tensorrt", "fp32", CPU)


def test_auto_without_onnxruntime_is_torch(small_vgg, tmp_path: Path, monkeypatch) -> None:
    ckpt = _checkpoint(small_vgg, tmp_path / "run")
    without_openvino(monkeypatch)
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    assert resolve_backend("auto", "fp32", CPU, ckpt) == "torch"
    with pytest.raises(FcnsegError, match="pip install"):
        resolve_backend("onnxruntime", "fp32", CPU)


def _checkpoint(model: nn.Module, folder: Path) -> Path:
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.info import DatasetInfo

    info = DatasetInfo(
        name="five",
        class_names=tuple(f"c{i}" for i in range(5)),
        palette=tuple((i * 40, 0, 0) for i in range(5)),
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint_last.pt"
    save_checkpoint(path, model, info)
    return path


def test_onnx_cache_beside_checkpoint_is_reused_and_keyed_by_content(
    small_vgg, tmp_path: Path, monkeypatch
) -> None:
    ckpt = _checkpoint(small_vgg, tmp_path / "run")
    first = load_backend(small_vgg, "onnxruntime", checkpoint=ckpt)
    cached = onnx_cache_path(ckpt)
    assert cached.is_file() and cached.parent == ckpt.parent
    assert list(ckpt.parent.glob("*.onnx")) == [cached]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cached file is current")

    monkeypatch.setattr("fcnseg.inference.export.export_onnx", no_export)
    again = load_backend(small_vgg, "onnxruntime", checkpoint=ckpt)
    x = torch.rand(1, 3, 33, 47)
    torch.testing.assert_close(again(x), first(x))
    # A changed checkpoint gets a new key, so the old export is never used for it.
    changed = scored(build_model("fcn8s_vgg16", num_classes=5, fc_channels=32), seed=7)
    _checkpoint(changed, tmp_path / "run")
    assert onnx_cache_path(ckpt) != cached


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_onnx_export_in_user_cache_when_checkpoint_folder_is_read_only(
    small_vgg, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ckpt = _checkpoint(small_vgg, tmp_path / "ro")
    ckpt.parent.chmod(0o555)
    try:
        model = load_backend(small_vgg, "onnxruntime", checkpoint=ckpt)
        assert not list(ckpt.parent.glob("*.onnx"))
    finally:
        ckpt.parent.chmod(0o755)
    assert model(torch.rand(1, 3, 20, 20)).shape == (1, 5, 20, 20)
    assert len(list((tmp_path / "cache" / "fcnseg" / "onnx").glob("*.onnx"))) == 1


def test_onnx_export_in_user_cache_when_checkpoint_folder_is_not_writable(
    small_vgg, tmp_path: Path, monkeypatch
) -> None:
    """The same as above for root, who can write anywhere: ``os.access`` says no. Where the user
    cache is not writable either, the export lives in a temporary folder for this process."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    ckpt = _checkpoint(small_vgg, tmp_path / "ro")
    real_access = os.access
    monkeypatch.setattr(
        export_cache.os,
        "access",
        lambda p, mode: False if Path(p) == ckpt.parent else real_access(p, mode),
    )
    model = load_backend(small_vgg, "onnxruntime", checkpoint=ckpt)
    assert not list(ckpt.parent.glob("*.onnx"))
    assert model(torch.rand(2, 3, 20, 20)).shape == (2, 5, 20, 20)
    assert onnx_cache_path(ckpt).parent == cache / "fcnseg" / "onnx"
    monkeypatch.setattr(
        export_cache.os,
        "access",
        lambda p, mode: False if Path(p) in (ckpt.parent, tmp_path) else real_access(p, mode),
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "unwritable"))
    model = load_backend(small_vgg, "onnxruntime", checkpoint=ckpt)
    assert len(list(tmp_path.rglob("*.onnx"))) == 1  # only the first run's cached file
    assert model(torch.rand(1, 3, 20, 20)).shape == (1, 5, 20, 20)


def test_builtin_models_cache_their_export_in_the_user_cache(
    small_vgg, tmp_path: Path, monkeypatch
) -> None:
    """Nothing is written inside the installed package."""
    from fcnseg import zoo

    ckpt = _checkpoint(small_vgg, tmp_path / "zoo")
    monkeypatch.setattr(zoo, "ZOO_DIR", ckpt.parent.resolve())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert onnx_cache_path(ckpt).parent == tmp_path / "cache" / "fcnseg" / "onnx"


def test_api_backends_agree(small_vgg, tmp_path: Path, capsys, monkeypatch) -> None:
    import fcnseg

    without_openvino(monkeypatch)
    ckpt = _checkpoint(small_vgg, tmp_path / "run")
    image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    by_torch = fcnseg.load(ckpt, device="cpu", backend="torch")
    by_ort = fcnseg.load(ckpt, device="cpu")  # auto: ONNX Runtime, exported once beside ckpt
    assert (by_torch.backend, by_ort.backend) == ("torch", "onnxruntime")
    assert "exporting the model for ONNX Runtime, once" in capsys.readouterr().err
    assert (by_torch.predict(image) == by_ort.predict(image)).mean() > 0.999
    np.testing.assert_allclose(
        by_torch.probabilities(image), by_ort.probabilities(image), atol=1e-4
    )
    assert len(list(ckpt.parent.glob("*.onnx"))) == 1


def test_torch_backend_is_the_prepared_model(small_vgg) -> None:
    model = load_backend(small_vgg, "torch", device=CPU)
    assert model is small_vgg and not model.training


@pytest.mark.skipif(cpu_bf16_feature() is None, reason="this CPU has no AVX512-BF16/AMX")
def test_bf16_backend_stores_bf16_weights_and_agrees_with_autocast(small_vgg) -> None:
    import copy

    x = torch.rand(2, 3, 61, 47, generator=torch.Generator().manual_seed(4))
    reference = copy.deepcopy(small_vgg)
    with autocast("bf16", CPU):
        want = class_scores(prepare(reference, CPU), x).float()
        model = load_backend(copy.deepcopy(small_vgg), "auto", precision="bf16", device=CPU)
        assert all(p.dtype == torch.bfloat16 for p in model.parameters())
        got = class_scores(model, x).float()
        labels = predict_batch(model, x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got.argmax(1) == want.argmax(1)).float().mean() > 0.98
    assert (labels == want.argmax(1).numpy()).mean() > 0.98
    with pytest.raises(FcnsegError, match="onnxruntime runs fp32 only"):
        load_backend(small_vgg, "onnxruntime", precision="bf16")


def test_labels_equal_torch_on_dataset1_images(tmp_path: Path) -> None:
    """A VGG16 FCN-8s of the real size whose trunk sees real photographs: labels agree, for ONNX
    Runtime and (where installed) OpenVINO fp32, both running one export."""
    from fcnseg.data.io import read_image
    from fcnseg.inference.export import export_onnx

    root = dataset1_dir()
    if root is None:
        pytest.skip("dataset1 not found in a shared/datasets folder above this checkout")
    files = sorted((root / "images_prepped_test").iterdir())[::50][:3]
    images = torch.stack(
        [torch.from_numpy(read_image(p)).permute(2, 0, 1).float().div(255) for p in files]
    )
    torch.manual_seed(3)
    model = scored(build_model("fcn8s_vgg16", num_classes=11, fc_channels=256), seed=3)
    reference = prepare(model, CPU)
    want, scores = predict_batch(reference, images), class_scores(reference, images)
    assert len(np.unique(want)) >= 3  # a varied label map, not one class everywhere
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    runners = {"onnxruntime": backends.OnnxRuntimeModel(backends.onnx_session(path))}
    if backends.openvino_available():
        from fcnseg.inference.openvino_backend import OpenVinoModel, compile_model

        runners["openvino"] = OpenVinoModel(compile_model(path, "fp32"))
    for runner in runners.values():
        got = predict_batch(runner, images)
        # Equal wherever the top two classes are not nearly tied (two libraries: not bit for bit;
        # 1 pixel of 518,400 differed on an AMX Xeon and on a Zen 5 CPU).
        assert_labels_agree(got, want, scores)


def test_bf16_refused_where_the_cpu_lacks_it(monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr("fcnseg.inference.precision.platform.machine", lambda: "x86_64")
    with pytest.raises(FcnsegError, match="neither AVX512-BF16 nor AMX.*use --precision fp32"):
        autocast("bf16", CPU)
    with autocast("fp32", CPU):  # fp32 needs nothing
        pass


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "feature"),
    [(True, False, "AMX"), (False, True, "AVX512-BF16"), (True, True, "AMX")],
)
def test_bf16_allowed_with_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, feature) -> None:
    from fcnseg.inference.precision import check_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert check_bf16(CPU) == feature
    with autocast("bf16", CPU):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
