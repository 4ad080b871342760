"""Images/s of torchfcn's FCN8s at 360x480 (fp32, as its users run it). Prints one JSON line.

Run with a Python that has torchfcn 1.9.7 (see benchmarks/README.md); called by
bench_inference.py. torchfcn zero-initialises its convolutions, which would let the CPU skip
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
    rates = {}
    for batch in (1, 4):
        x = torch.rand(batch, 3, 360, 480)
        with torch.no_grad():
            out = model(x)  # warm-up
            assert out.shape == (batch, 11, 360, 480), out.shape
            t0 = time.perf_counter()
            for _ in range(repeats):
                model(x)
        rates[batch] = batch * repeats / (time.perf_counter() - t0)
    print(json.dumps({"name": "torchfcn FCN8s", "size": "360x480", "rates": rates}))


if __name__ == "__main__":
    main()
