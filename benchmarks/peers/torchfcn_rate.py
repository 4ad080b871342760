"""Images/s of torchfcn's FCN8s at 360x480 (fp32, as its users run it). Prints one JSON line.

Run with a Python that has torchfcn 1.9.7 (see docs/benchmarks.md); called by
bench_inference.py as ``PY torchfcn_rate.py REPEATS [BATCH ...]`` (best call of
REPEATS per batch). torchfcn zero-initialises its convolutions, which would let the CPU skip
nothing but would make outputs trivial, so they are randomised first.
"""

import json
import sys
import time

import torch
import torchfcn


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    model = torchfcn.models.FCN8s(n_class=11).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.01)
    batches = [int(b) for b in sys.argv[2:]] or [1, 4]
    rates = {}
    for batch in batches:
        x = torch.rand(batch, 3, 360, 480)
        with torch.no_grad():
            out = model(x)  # warm-up
            assert out.shape == (batch, 11, 360, 480), out.shape
            best = 0.0
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                best = max(best, batch / (time.perf_counter() - t0))
        rates[batch] = best
    backend = f"torch {torch.__version__} fp32 NCHW, {torch.get_num_threads()} threads"
    name = "torchfcn 1.9.7 FCN8s"
    print(json.dumps({"name": name, "backend": backend, "size": "360x480", "rates": rates}))


if __name__ == "__main__":
    main()
