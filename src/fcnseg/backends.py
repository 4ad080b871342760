"""Inference backends: the PyTorch model itself, or its ONNX export run by ONNX Runtime.

Either way the result is a module mapping images ``(N, 3, H, W)`` in [0, 1] to logits
``(N, C, H, W)`` as a torch tensor, so :mod:`fcnseg.inference` (batches, tiles, test-time
augmentation) runs unchanged on it. The ONNX file is cached beside the checkpoint, named by a
hash of the checkpoint's bytes and of the code that exports it, so a changed checkpoint or a new
fcnseg never reuses a stale file; where that folder is not writable, it is built in a temporary
folder for this process only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from fcnseg.errors import FcnsegError

BACKENDS = ("auto", "torch", "onnxruntime")
# Files whose code decides the exported graph: a change in any of them means a new cache key.
_EXPORT_SOURCES = ("export.py", "models")
_HASH_CHUNK = 1 << 22


def onnxruntime_available() -> bool:
    """True when the ``onnxruntime`` package is installed (``pip install fcnseg[export]``)."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(
    backend: str,
    precision: str,
    device: torch.device,
    checkpoint: str | Path | None = None,
) -> str:
    """The backend to run; FcnsegError for a combination that cannot run (ONNX Runtime here is
    CPU and fp32 only).

    ``auto`` is ONNX Runtime for fp32 on the CPU when it is installed and the export of
    ``checkpoint`` is cached or can be cached beside it (so the export, tens of seconds for
    VGG16, is paid once per checkpoint); PyTorch otherwise.
    """
    if backend not in BACKENDS:
        raise FcnsegError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        fits = precision == "fp32" and device.type == "cpu" and onnxruntime_available()
        cached = checkpoint is not None and _cacheable(onnx_cache_path(checkpoint))
        return "onnxruntime" if fits and cached else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise FcnsegError(f"--backend onnxruntime runs on the CPU only, not on {device}")
        if precision != "fp32":
            raise FcnsegError(
                f"--backend onnxruntime runs fp32 only; for --precision {precision} use "
                "--backend torch"
            )
        if not onnxruntime_available():
            raise FcnsegError(
                "--backend onnxruntime needs the onnxruntime package: pip install 'fcnseg[export]'"
            )
    return backend


def _cacheable(path: Path) -> bool:
    """True when ``path`` exists or can be written (its nearest existing folder is writable)."""
    if path.is_file():
        return True
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def export_digest() -> str:
    """SHA-256 over the fcnseg sources that shape the exported graph, and torch's version."""
    import fcnseg

    root = Path(fcnseg.__file__).parent
    h = hashlib.sha256(f"torch {torch.__version__}".encode())
    for name in _EXPORT_SOURCES:
        for path in (
            sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        ):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def onnx_cache_path(checkpoint: str | Path) -> Path:
    """Where the ONNX export of ``checkpoint`` is cached, named by content hashes: beside it, or,
    for a built-in model (inside the installed package) or a read-only folder, in the user's
    cache folder (``$XDG_CACHE_HOME/fcnseg/onnx``, default ``~/.cache/fcnseg/onnx``)."""
    from fcnseg import zoo

    checkpoint = Path(checkpoint)
    stat = checkpoint.stat()
    key = _cache_key(str(checkpoint.resolve()), stat.st_mtime_ns, stat.st_size)
    name = f"{checkpoint.stem}.{key[:16]}.onnx"
    folder = checkpoint.resolve().parent
    if folder == zoo.ZOO_DIR or not os.access(folder, os.W_OK):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "fcnseg" / "onnx"
    return folder / name


@functools.lru_cache(maxsize=8)
def _cache_key(path: str, mtime_ns: int, size: int) -> str:
    # Hashing a VGG16 checkpoint (0.5 GB) takes a second: once per file version per process.
    return hashlib.sha256((file_digest(path) + export_digest()).encode()).hexdigest()


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


def build_onnx_model(
    model: nn.Module, checkpoint: str | Path | None = None, threads: int | None = None
) -> OnnxRuntimeModel:
    """Export ``model`` to ONNX (or reuse the cached export of ``checkpoint``) and open it.

    With ``checkpoint`` the file is cached beside it (see :func:`onnx_cache_path`) when that
    folder is writable; otherwise, or without a checkpoint, it is built in a temporary folder
    that is removed once the session has read it.
    """
    from fcnseg.export import export_onnx

    model = model.float().to("cpu").eval()
    num_classes = getattr(model, "num_classes", None)
    if checkpoint is not None:
        path = onnx_cache_path(checkpoint)
        if path.is_file():
            return OnnxRuntimeModel(onnx_session(path, threads), num_classes)
        if _cacheable(path):
            print(f"exporting the model for ONNX Runtime, once: {path}", file=sys.stderr)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                export_onnx(model, path)
                return OnnxRuntimeModel(onnx_session(path, threads), num_classes)
            except OSError:
                pass  # e.g. a full disk: fall back to a temporary file
    with tempfile.TemporaryDirectory(prefix="fcnseg-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path)
        return OnnxRuntimeModel(onnx_session(path, threads), num_classes)


def load_backend(
    model: nn.Module,
    backend: str = "auto",
    *,
    precision: str = "fp32",
    device: torch.device | None = None,
    checkpoint: str | Path | None = None,
) -> nn.Module:
    """The model to hand to :func:`fcnseg.inference.predict_batch` / ``predict_labels`` /
    ``class_scores``, ready to run: ``model`` prepared for ``device`` (``torch``), or its ONNX
    Runtime counterpart (``onnxruntime``); ``auto`` picks as :func:`resolve_backend` says.

    Call it after validating the other options and before the work starts; run the result inside
    :func:`fcnseg.inference.autocast` as before (autocast does not touch ONNX Runtime, which this
    function only picks for fp32). For ``bf16`` the weights are stored in bf16 once: autocast
    would otherwise convert them at every call (VGG16's fc6 alone is 0.4 GB in fp32), which
    measured 1.36x slower on a Zen 4 CPU with AVX512-BF16. ``model`` itself is converted.
    """
    from fcnseg.inference import prepare
    from fcnseg.precision import check_bf16

    device = device if device is not None else torch.device("cpu")
    if resolve_backend(backend, precision, device, checkpoint) == "onnxruntime":
        return build_onnx_model(model, checkpoint)
    model = prepare(model, device)
    if precision == "bf16":
        check_bf16(device)
        model = model.to(torch.bfloat16)
    return model
