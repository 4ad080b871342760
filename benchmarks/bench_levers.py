"""fp32 CPU inference levers for FCN-8s VGG16, measured side by side in one process.

Usage:
    python benchmarks/bench_levers.py [--batch 4] [--rounds 3] [--only eager_cl,onnxruntime,...]

Every lever runs the same random-weight model on the same input; rounds go round-robin over the
levers (so a change of load on a shared machine hits all of them alike), and the best round of
each is reported with its ratio to the current path (``prepare()``: eager, channels-last). The
largest logit difference from the eager NCHW fp32 output is printed too. Weights are random but
the score layers are not zero, so the logits depend on every layer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import machine_summary, table
from torch import nn

from fcnseg.inference import prepare
from fcnseg.models import build_model

H, W = 360, 480


def random_model() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("fcn8s_vgg16", num_classes=11).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.01)
    return model


def lever_eager(model: nn.Module, x: torch.Tensor, channels_last: bool) -> Callable:
    m = prepare(model, torch.device("cpu"), channels_last=channels_last)
    inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return lambda: m(inp)


def lever_onnxruntime(model: nn.Module, x: torch.Tensor) -> Callable:
    from fcnseg.inference.backends import onnx_session
    from fcnseg.inference.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, path)
        session = onnx_session(path)
    feed = {"image": x.numpy()}
    return lambda: torch.from_numpy(session.run(["logits"], feed)[0])


def lever_compile(model: nn.Module, x: torch.Tensor) -> Callable:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    m = prepare(model, torch.device("cpu"))
    compiled = torch.compile(m, backend="inductor", dynamic=False)
    inp = x.contiguous(memory_format=torch.channels_last)
    return lambda: compiled(inp)


def lever_jit_freeze(model: nn.Module, x: torch.Tensor) -> Callable:
    m = prepare(model, torch.device("cpu"))
    inp = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        traced = torch.jit.trace(m, inp, check_trace=False)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return lambda: frozen(inp)


class MkldnnTrunk(nn.Module):
    """The VGG16 trunk and fc6/fc7 on oneDNN tensors with prepacked weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from torch.utils import mkldnn

        self.model = model
        self.body = mkldnn.to_mkldnn(model.backbone.body)
        self.neck = mkldnn.to_mkldnn(model.neck)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = (image - m.mean) / m.std
        h, w = image.shape[-2:]
        x = nn.functional.pad(x, (0, -w % 32, 0, -h % 32))
        feats = self.body(x.to_mkldnn())
        feats["pool5"] = self.neck(feats["pool5"])
        dense = {k: v.to_dense() for k, v in feats.items()}
        dense["fc7"] = dense.pop("pool5")
        return m.decode(dense, (h, w))


def lever_mkldnn(model: nn.Module, x: torch.Tensor) -> Callable:
    m = MkldnnTrunk(prepare(model, torch.device("cpu"), channels_last=False))
    return lambda: m(x)


def lever_bf16_autocast(model: nn.Module, x: torch.Tensor) -> Callable:
    m = prepare(model, torch.device("cpu"))
    inp = x.contiguous(memory_format=torch.channels_last)

    def run() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m(inp)

    return run


def lever_bf16_weights(model: nn.Module, x: torch.Tensor) -> Callable:
    """Weights stored in bf16 once, instead of autocast casting them at every call."""
    m = prepare(model, torch.device("cpu")).to(torch.bfloat16)
    inp = x.contiguous(memory_format=torch.channels_last).to(torch.bfloat16)
    return lambda: m(inp).float()


def lever_bf16_compile(model: nn.Module, x: torch.Tensor) -> Callable:
    """bf16 weights under torch.compile (inductor, freezing: prepacked weights, fused ReLU)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    m = prepare(model, torch.device("cpu")).to(torch.bfloat16)
    compiled = torch.compile(m, backend="inductor", dynamic=False)
    inp = x.contiguous(memory_format=torch.channels_last).to(torch.bfloat16)
    return lambda: compiled(inp).float()


def lever_bf16_jit_freeze(model: nn.Module, x: torch.Tensor) -> Callable:
    m = prepare(model, torch.device("cpu")).to(torch.bfloat16)
    inp = x.contiguous(memory_format=torch.channels_last).to(torch.bfloat16)
    with torch.no_grad():
        traced = torch.jit.trace(m, inp, check_trace=False)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return lambda: frozen(inp).float()


LEVERS: dict[str, Callable] = {
    "eager_cl": lambda m, x: lever_eager(m, x, True),
    "eager_nchw": lambda m, x: lever_eager(m, x, False),
    "onnxruntime": lever_onnxruntime,
    "compile": lever_compile,
    "jit_freeze": lever_jit_freeze,
    "mkldnn": lever_mkldnn,
    "bf16_autocast": lever_bf16_autocast,
    "bf16_weights": lever_bf16_weights,
    "bf16_compile": lever_bf16_compile,
    "bf16_jit_freeze": lever_bf16_jit_freeze,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(LEVERS), help="comma-separated levers")
    args = parser.parse_args()
    print(machine_summary())
    torch.manual_seed(1)
    x = torch.rand(args.batch, 3, H, W)
    base_model = random_model()
    with torch.no_grad():
        reference = base_model(x)
    runs, setup_s, diffs = {}, {}, {}
    for name in args.only.split(","):
        t0 = time.perf_counter()
        with torch.no_grad():
            fn = LEVERS[name](random_model(), x)
            out = fn()  # warm-up: compilation, kernel choice, memory planning
        setup_s[name] = time.perf_counter() - t0
        diffs[name] = float((out.float() - reference).abs().max())
        same = float((out.argmax(1) == reference.argmax(1)).float().mean())
        runs[name] = fn
        print(
            f"{name}: ready in {setup_s[name]:.1f}s, max |diff| {diffs[name]:.2e}, labels {same:.4%} equal"
        )
    best: dict[str, float] = {}
    for r in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                fn()
            rate = args.batch / (time.perf_counter() - t0)
            best[name] = max(best.get(name, 0.0), rate)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    base = best.get("eager_cl")
    rows = [
        {
            "lever": name,
            "img/s (best)": f"{rate:.2f}",
            "vs eager channels-last": f"{rate / base:.2f}x" if base else "",
            "max |logit diff|": f"{diffs[name]:.1e}",
            "setup s": f"{setup_s[name]:.1f}",
        }
        for name, rate in best.items()
    ]
    print(f"FCN-8s VGG16 fp32, batch {args.batch}, {H}x{W}, {torch.get_num_threads()} threads")
    print(table(rows, list(rows[0])))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
