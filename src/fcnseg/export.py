"""ONNX export with dynamic height and width, checked against PyTorch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import atomic_write
from fcnseg.errors import FcnsegError


def export_onnx(model: nn.Module, path: str | Path, opset: int = 18) -> None:
    """Write ``model`` as ONNX: input ``image (N, 3, H, W)`` in [0, 1], output ``logits``.

    Batch, height and width are dynamic; normalisation, padding and cropping are inside.
    """
    model = model.eval()
    example = torch.rand(1, 3, 97, 131)
    batch, height, width = (
        torch.export.Dim(n, min=1, max=8192) for n in ("batch", "height", "width")
    )

    def write(tmp: str) -> None:
        torch.onnx.export(
            model,
            (example,),
            tmp,
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
            external_data=False,
        )

    try:
        atomic_write(path, write)
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
