"""ONNX export with dynamic height and width, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import atomic_write
from fcnseg.data.info import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.files import OutputError
from fcnseg.version import __version__


def onnx_metadata(model: nn.Module, info: DatasetInfo | None = None) -> dict[str, str]:
    """What a user of the ``.onnx`` file needs, as ONNX ``metadata_props`` (JSON strings).

    Keys: ``input`` and ``output`` (the tensor conventions), ``arch`` (model name and
    constructor arguments), ``fcnseg_version`` and, with ``info``, ``class_names``,
    ``palette``, ``ignore_index`` and ``dataset``.
    """
    normalisation = {
        k: [round(float(v), 6) for v in getattr(model, k).flatten()]
        for k in ("mean", "std")
        if isinstance(getattr(model, k, None), torch.Tensor)
    }
    meta = {
        "input": {
            "name": "image",
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "size": "any height and width (padded to a multiple of 32 and cropped inside)",
            "normalisation": {"applied": "inside the model: (image - mean) / std", **normalisation},
        },
        "output": {
            "name": "logits",
            "layout": "NCHW",
            "meaning": "class scores at the input size; argmax over C gives class ids",
        },
        "arch": getattr(model, "arch", None),
        "fcnseg_version": __version__,
    }
    if info is not None:
        meta |= {
            "class_names": list(info.class_names),
            "palette": [list(c) for c in info.palette],
            "ignore_index": info.ignore_index,
            "dataset": info.name,
        }
    return {k: json.dumps(v, default=str) for k, v in meta.items()}


def export_onnx(
    model: nn.Module,
    path: str | Path,
    opset: int = 18,
    info: DatasetInfo | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> None:
    """Write ``model`` as ONNX: input ``image (N, 3, H, W)`` in [0, 1], output ``logits``.

    Batch, height and width are dynamic; normalisation, padding and cropping are inside. The
    file's ``metadata_props`` carry :func:`onnx_metadata` (class names, palette and ignore index
    when ``info`` is given), readable with ``onnx.load(path).metadata_props`` or onnxruntime's
    ``session.get_modelmeta().custom_metadata_map``; ``extra_metadata`` is added to them (the
    export caches' stamp, :func:`fcnseg.inference.export_cache.stamp`).

    Raises:
        OutputError: the file cannot be written (full disk, no permission): callers may export
            elsewhere.
        FcnsegError: the export itself failed.
    """
    model = model.eval()
    if any(not p.is_contiguous() for p in model.parameters()):
        # torch.export guards channels-last weights on the batch size (torch 2.14: "batch <= 2"),
        # which breaks the dynamic batch; a row-major copy exports the same function.
        model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    example = torch.rand(1, 3, 97, 131)
    batch, height, width = (
        torch.export.Dim(n, min=1, max=8192) for n in ("batch", "height", "width")
    )

    def write(tmp: str) -> None:
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            verbose=False,  # torch.onnx's own progress lines; fcnseg says what it does
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
        )
        program.model.metadata_props.update(onnx_metadata(model, info) | (extra_metadata or {}))
        program.save(tmp, external_data=False)

    try:
        atomic_write(path, write)
    except OutputError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FcnsegError(f"ONNX export failed ({first[:300]})") from exc


def check_onnx(
    model: nn.Module, path: str | Path, shape: tuple[int, int, int, int] = (1, 3, 97, 131)
) -> float:
    """Largest absolute difference between onnxruntime and PyTorch logits on a random input."""
    import onnxruntime as ort

    image = torch.rand(*shape)
    with torch.no_grad():
        expected = model.eval()(image).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"image": image.numpy()})
    if got.shape != expected.shape:
        raise FcnsegError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.abs(got - expected).max())
