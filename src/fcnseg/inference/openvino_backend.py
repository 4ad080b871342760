"""The ONNX export run by OpenVINO on the CPU (``--backend openvino``, ``pip install fcnseg[openvino]``).

The same export as ONNX Runtime's (cached and checked by :func:`fcnseg.inference.backends.open_export`),
compiled with the precision asked mapped to OpenVINO's inference-precision hint: ``fp32`` ->
``f32`` (OpenVINO's own default is bf16 wherever the CPU has AVX512-BF16 or AMX, so fp32 is set
explicitly), ``bf16`` -> ``bf16``. ``int8`` compiles the quantized export of
:mod:`fcnseg.inference.quantize`, with ``f32`` for the operations left unquantized. The compiled model
keeps the export's dynamic batch, height and width, so tiles and test-time scales need no
recompilation (a static shape measured no faster: 1.99 vs 2.00 img/s for camvid_lite2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor, nn

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVinoModel(nn.Module):
    """A compiled OpenVINO model behind the model interface: images ``(N, 3, H, W)`` in [0, 1]
    -> logits ``(N, C, H, W)`` float32 torch tensor, on the CPU.

    Like :class:`fcnseg.inference.backends.OnnxRuntimeModel`, it holds one empty parameter so that
    ``next(model.parameters()).device`` says CPU.
    """

    def __init__(self, compiled, num_classes: int | None = None, precision: str = "fp32") -> None:
        super().__init__()
        self.compiled = compiled
        self.num_classes = num_classes
        self.precision = precision
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, image: Tensor) -> Tensor:
        # OpenVINO reads row-major NCHW float32; channels-last or bf16 input is converted. The
        # result is copied out of the request's buffer (share_outputs is off by default).
        x = image.detach().to("cpu", torch.float32).contiguous()
        logits = self.compiled(x.numpy())[0]
        return torch.from_numpy(logits)


def import_openvino():
    """The ``openvino`` module, imported with its telemetry declined.

    ``import openvino`` (and NNCF) report usage to Google Analytics unless a consent file in the
    user's home says no; fcnseg promises to run offline and send nothing. Rather than write into
    the user's home, the library's own consent check is made to answer "declined" in this process
    before OpenVINO (or NNCF) creates its telemetry object, which then sends no event.
    """
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # another OpenVINO packaging: nothing to decline
        pass
    else:
        OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED
    import openvino

    return openvino


def compile_model(model, precision: str, threads: int | None = None):
    """``model`` (an ``openvino.Model`` or a file path) compiled for the CPU at ``precision``'s
    hint, with ``threads`` inference threads (default torch's thread count)."""
    ov = import_openvino()

    config = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
    }
    source = str(model) if isinstance(model, str | Path) else model
    return ov.Core().compile_model(source, "CPU", config)


def build_openvino_model(
    model: nn.Module,
    checkpoint: str | Path | None,
    precision: str = "fp32",
    *,
    calibration: str | Path | None = None,
    threads: int | None = None,
) -> OpenVinoModel:
    """``model``'s ONNX export (cached beside ``checkpoint``) compiled by OpenVINO at
    ``precision``; for ``int8`` the quantized export (see :func:`fcnseg.inference.quantize.int8_model`)."""
    from fcnseg.inference.backends import open_export
    from fcnseg.inference.precision import cpu_int8_feature, cpu_name

    num_classes = getattr(model, "num_classes", None)
    if precision == "int8":
        from fcnseg.inference.quantize import int8_model

        if cpu_int8_feature() is None:
            print(
                f"warning: this CPU ({cpu_name()}) has neither VNNI nor AMX, so int8 gains less "
                "over fp32 here",
                file=sys.stderr,
            )
        quantized = int8_model(model, checkpoint, calibration)
        return OpenVinoModel(compile_model(quantized, "int8", threads), num_classes, precision)

    def open_file(path: Path) -> OpenVinoModel:
        return OpenVinoModel(compile_model(path, precision, threads), num_classes, precision)

    return open_export(model, checkpoint, "OpenVINO", open_file)
