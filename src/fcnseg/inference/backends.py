"""Inference backends: the PyTorch model itself, or its ONNX export run by ONNX Runtime or OpenVINO.

Either way the result is a module mapping images ``(N, 3, H, W)`` in [0, 1] to logits
``(N, C, H, W)`` as a torch tensor, so :mod:`fcnseg.inference` (batches, tiles, test-time
augmentation) runs unchanged on it. The ONNX file is cached beside the checkpoint, named by the
digest of the bytes the model was loaded from and of the code that exports it, and stamped
inside with both; it is checked before use (:mod:`fcnseg.inference.export_cache`), so a changed
checkpoint, a new fcnseg or a foreign file never stands in for the export. Where that folder is
not writable it is cached in the user's cache folder, and where nothing is writable (or the disk
is full) it is built in a temporary folder for this process only.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from fcnseg.errors import FcnsegError
from fcnseg.files import OutputError, file_digest
from fcnseg.inference.export_cache import (
    cache_folder,
    cache_key,
    cacheable,
    check_record,
    onnx_stamp,
    remove_older_exports,
    remove_stale_temporaries,
    stamp,
)

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
# What ``auto`` tries first, per precision, on the CPU (measured in docs/benchmarks.md): OpenVINO
# runs the ONNX export with fused, blocked-layout kernels for fp32 and bf16 and is the only path
# to int8; ONNX Runtime beats eager PyTorch for fp32 (1.2-1.3x) but has no fast bf16.
AUTO_ORDER = {
    "fp32": ("openvino", "onnxruntime", "torch"),
    "bf16": ("openvino", "torch"),
    "int8": ("openvino",),
}


def onnxruntime_available() -> bool:
    """True when the ``onnxruntime`` package is installed (``pip install fcnseg[export]``)."""
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_available() -> bool:
    """True when OpenVINO and the ONNX exporter's packages are installed
    (``pip install fcnseg[openvino]``)."""
    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "onnx", "onnxscript"))


def nncf_available() -> bool:
    """True when NNCF (the int8 quantizer, ``pip install fcnseg[openvino]``) is installed."""
    return importlib.util.find_spec("nncf") is not None


# Looked up at call time, so that a test can simulate a missing package.
_AVAILABLE = {
    "torch": lambda: True,
    "onnxruntime": lambda: onnxruntime_available(),
    "openvino": lambda: openvino_available(),
}
_EXTRA = {"onnxruntime": "export", "openvino": "openvino"}


def resolve_backend(
    backend: str,
    precision: str,
    device: torch.device,
    checkpoint: str | Path | None = None,
) -> str:
    """The backend to run; FcnsegError (one line) for a combination that cannot run.

    ``auto`` takes the first of :data:`AUTO_ORDER` for the precision that is installed, on the
    CPU, and (for the exported backends) whose export of ``checkpoint`` can be cached, so the
    export is paid once per checkpoint; PyTorch on a GPU. ``int8`` runs on OpenVINO only.
    """
    from fcnseg.inference.precision import check_precision

    check_precision(precision)
    if backend not in BACKENDS:
        raise FcnsegError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        if device.type != "cpu" and precision != "int8":
            return "torch"
        cached = checkpoint is not None and cacheable(
            cache_folder(Path(checkpoint), "onnx") / "probe"
        )
        for name in AUTO_ORDER[precision]:
            if _AVAILABLE[name]() and (name == "torch" or cached or precision == "int8"):
                return _check(name, precision, device)
        return _check("openvino", precision, device)  # int8 without OpenVINO: says what to install
    return _check(backend, precision, device)


def _check(backend: str, precision: str, device: torch.device) -> str:
    """``backend`` if it runs ``precision`` on ``device``; a one-line FcnsegError otherwise."""
    if backend == "torch":
        if precision == "int8":
            hint = "" if openvino_available() else " (pip install 'fcnseg[openvino]')"
            raise FcnsegError(f"--precision int8 runs on --backend openvino (or auto) only{hint}")
        return backend
    if device.type != "cpu":
        raise FcnsegError(f"--backend {backend} runs on the CPU only, not on {device}")
    if backend == "onnxruntime" and precision != "fp32":
        raise FcnsegError(
            f"--backend onnxruntime runs fp32 only; for --precision {precision} use "
            f"--backend {'torch or openvino' if precision == 'bf16' else 'openvino'}"
        )
    if not _AVAILABLE[backend]():
        what = "int8 quantization" if precision == "int8" else f"--backend {backend}"
        raise FcnsegError(
            f"{what} needs the {backend} package: pip install 'fcnseg[{_EXTRA[backend]}]'"
        )
    if precision == "int8" and not nncf_available():
        raise FcnsegError("--precision int8 needs the nncf package: pip install 'fcnseg[openvino]'")
    return backend


def onnx_cache_path(checkpoint: str | Path, checkpoint_sha256: str | None = None) -> Path:
    """Where the ONNX export of ``checkpoint`` is cached: ``STEM.KEY.onnx`` in
    :func:`fcnseg.inference.export_cache.cache_folder`, KEY from the digest of the checkpoint's bytes
    (``checkpoint_sha256``, else the file is hashed now) and of the exporting code."""
    checkpoint = Path(checkpoint)
    digest = checkpoint_sha256 or file_digest(checkpoint)
    key = cache_key(digest)
    return cache_folder(checkpoint, "onnx") / f"{checkpoint.stem}.{key[:16]}.onnx"


def model_digest(model: nn.Module, checkpoint: Path) -> str:
    """The digest of the bytes ``model`` was loaded from (recorded by
    :func:`fcnseg.checkpoint.model_from_checkpoint`); a model built otherwise is taken to be
    the checkpoint's current content, which is hashed."""
    return getattr(model, "checkpoint_sha256", None) or file_digest(checkpoint)


def trusted_onnx(model: nn.Module, checkpoint: str | Path, consumer: str) -> Path | None:
    """The cached ONNX export of ``checkpoint`` (``model`` loaded from it), checked before use
    and (re)built when missing or untrusted; None where it cannot be cached (then export it to
    a temporary folder). ``consumer`` names the backend in the one-line notes."""
    from fcnseg.inference.export import export_onnx

    checkpoint = Path(checkpoint)
    digest = model_digest(model, checkpoint)
    path = onnx_cache_path(checkpoint, digest)
    key = cache_key(digest)
    remove_stale_temporaries(path.parent, checkpoint.stem)
    if path.is_symlink() or path.exists() and not path.is_file():
        # Not a file fcnseg wrote: a write would go through the link (into the checkpoint, say).
        print(f"{path} is a link or not a regular file: not used, nor replaced; exporting to a "
              "temporary copy", file=sys.stderr)  # fmt: skip
        return None
    if path.is_file():
        record, why = onnx_stamp(path)
        why = why or check_record(record, digest, key)
        if not why:
            return path
        print(f"the cached ONNX export {path} is not used ({why}): exporting it again",
              file=sys.stderr)  # fmt: skip
    if not cacheable(path):
        return None
    print(f"exporting the model for {consumer}, once: {path}", file=sys.stderr)
    try:
        export_onnx(model, path, extra_metadata=stamp(checkpoint, digest, key))
    except OutputError as exc:  # e.g. a full disk: the caller exports to a temporary folder
        print(f"cannot cache the ONNX export ({exc}); using a temporary copy", file=sys.stderr)
        return None
    remove_older_exports(path, checkpoint, f"{checkpoint.stem}.*.onnx", lambda p: onnx_stamp(p)[0])
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session tuned for throughput: every graph optimisation, one intra-op
    thread per core (``threads``; default torch's thread count, which follows the cores and
    ``OMP_NUM_THREADS``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initialisers etc. are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session behind the model interface: images ``(N, 3, H, W)`` in [0, 1] ->
    logits ``(N, C, H, W)`` float32 torch tensor, on the CPU.

    It holds one empty parameter so that ``next(model.parameters()).device`` (how inference code
    finds the device) says CPU.
    """

    def __init__(self, session, num_classes: int | None = None) -> None:
        super().__init__()
        self.session = session
        self.num_classes = num_classes
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, image: Tensor) -> Tensor:
        # ONNX Runtime reads row-major NCHW float32; channels-last or bf16 input is converted.
        x = image.detach().to("cpu", torch.float32).contiguous()
        (logits,) = self.session.run(["logits"], {"image": x.numpy()})
        return torch.from_numpy(logits)


def open_export(model: nn.Module, checkpoint: str | Path | None, consumer: str, open_file):
    """``open_file(path)`` on the ONNX export of ``model``: the trusted cached export of
    ``checkpoint`` (see :func:`trusted_onnx`), else one made in a temporary folder that is
    removed once ``open_file`` has read it. A cached file that passes the checks but does not
    open is replaced by a temporary export, with one line. ``model`` is converted to fp32."""
    from fcnseg.inference.export import export_onnx

    model = model.float().to("cpu").eval()
    if checkpoint is not None:
        path = trusted_onnx(model, checkpoint, consumer)
        if path is not None:
            try:
                return open_file(path)
            except Exception as exc:  # a stamped file the runtime still rejects
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                print(f"{consumer} cannot open {path} ({first[:160]}); exporting a temporary "
                      "copy instead", file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fcnseg-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path)
        return open_file(path)


def build_onnx_model(
    model: nn.Module, checkpoint: str | Path | None = None, threads: int | None = None
) -> OnnxRuntimeModel:
    """Export ``model`` to ONNX (or reuse the cached export of ``checkpoint``) and open it in
    ONNX Runtime; see :func:`open_export` for the cache."""
    num_classes = getattr(model, "num_classes", None)

    def open_file(path: Path) -> OnnxRuntimeModel:
        return OnnxRuntimeModel(onnx_session(path, threads), num_classes)

    return open_export(model, checkpoint, "ONNX Runtime", open_file)


def load_backend(
    model: nn.Module,
    backend: str = "auto",
    *,
    precision: str = "fp32",
    device: torch.device | None = None,
    checkpoint: str | Path | None = None,
    calibration: str | Path | None = None,
) -> nn.Module:
    """The model to hand to :func:`fcnseg.inference.predict_batch` / ``predict_labels`` /
    ``class_scores``, ready to run: ``model`` prepared for ``device`` (``torch``), or its ONNX
    Runtime or OpenVINO counterpart; ``auto`` picks as :func:`resolve_backend` says.

    Call it after validating the other options and before the work starts; run the result inside
    :func:`fcnseg.inference.autocast` as before (autocast does not touch the exported backends).
    For ``bf16`` on torch the weights are stored in bf16 once: autocast would otherwise convert
    them at every call (VGG16's fc6 alone is 0.4 GB in fp32), which measured 1.36x slower on a
    Zen 4 CPU with AVX512-BF16. ``model`` itself is converted. ``int8``: the export quantized on
    ``calibration`` images (default: the checkpoint's training images), see
    :mod:`fcnseg.inference.quantize`.
    """
    from fcnseg.inference.core import prepare
    from fcnseg.inference.precision import check_bf16

    device = device if device is not None else torch.device("cpu")
    name = resolve_backend(backend, precision, device, checkpoint)
    if precision == "bf16":
        check_bf16(device)
    if name == "onnxruntime":
        return build_onnx_model(model, checkpoint)
    if name == "openvino":
        from fcnseg.inference.openvino_backend import build_openvino_model

        return build_openvino_model(model, checkpoint, precision, calibration=calibration)
    model = prepare(model, device)
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    return model
