"""The input-scale models' last step, fused against the two steps it replaced, side by side in one
process (EfficientNet-Lite2 FCN-8s at input scale 1.5, as in the dataset1 recipes):

- two steps (before 7 December): upsample the stride-4 scores to the enlarged input's size
  (540x720 for a 360x480 image), then ``F.interpolate`` them back to 360x480;
- fused: one pair of matrix products straight to 360x480 (``BilinearUpsample(resize_to=...)``).

Timed: a step of the frozen stage (decoder on cached features, batch 8 of 360x480, forward,
backward, AdamW), a fine-tuning step (whole model, batch 8 of 320x320 crops) and an inference
forward (one 360x480 image, no gradients).

Usage:
    python benchmarks/bench_fused_resize.py [--rounds 5] [--threads N]

Rounds go round-robin over the variants so that a change of load hits all alike; the best time of
each is reported with its ratio to the two steps. Both variants share weights; the largest
difference of their logits is printed.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import machine_summary, race, table

from fcnseg.models import build_model
from fcnseg.models.fcn import scaled_size
from fcnseg.training.feature_cache import frozen_features

SCALE, CLASSES, H, W, CROP = 1.5, 11, 360, 480, 320
CL = torch.channels_last


def two_step_decode(self, feats: dict, size: tuple[int, int]) -> torch.Tensor:
    """FCN.decode as it was before the fusion (variant 4, input scale != 1)."""
    h = self.score_fr(feats["fc7"] if "fc7" in feats else self.neck(feats["pool5"]))
    h = self.upscore2(h) + self.score_pool4(feats["pool4"])
    h = self.upscore_pool4(h) + self.score_pool3(feats["pool3"])
    h = self.upscore_pool3(h) + self.score_pool2(feats["pool2"])
    logits = self.upscore(h, scaled_size(size, self.input_scale))
    return F.interpolate(logits, size, mode="bilinear", align_corners=False)


def lite2(freeze: str, fused: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("fcn8s_efficientnet_lite2", num_classes=CLASSES, input_scale=SCALE)
    for m in model.modules():  # non-zero scores, so that the logits compare
        if isinstance(m, torch.nn.Conv2d) and m.weight.abs().sum() == 0:
            torch.nn.init.normal_(m.weight, std=0.05)
    model.freeze(freeze, norm_eval=True)
    if not fused:
        model.decode = types.MethodType(two_step_decode, model)
    return model.to(memory_format=CL)


def make_decoder_step(fused: bool, feats: dict, target: torch.Tensor) -> Callable[[], float]:
    model = lite2("backbone", fused).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step() -> float:
        loss = F.cross_entropy(model.decode(feats, (H, W)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def make_finetune_step(fused: bool) -> Callable[[], float]:
    model = lite2("none", fused).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, CROP, CROP, generator=gen).contiguous(memory_format=CL)
    target = torch.randint(0, CLASSES, (8, CROP, CROP), generator=gen)

    def step() -> float:
        loss = F.cross_entropy(model(images), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def make_infer(fused: bool, image: torch.Tensor) -> Callable[[], torch.Tensor]:
    model = lite2("none", fused).eval()
    return lambda: model(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_summary(), flush=True)
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, H, W, generator=gen).contiguous(memory_format=CL)
    with torch.no_grad():
        a, b = make_infer(False, image)(), make_infer(True, image)()
        print(f"largest logit difference, two steps vs fused: {float((a - b).abs().max()):.2e}")
        net = lite2("backbone", True).eval()
        batch = torch.rand(8, 3, H, W, generator=gen).contiguous(memory_format=CL)
        feats = {k: v.contiguous() for k, v in frozen_features(net, "backbone", batch).items()}
    target = torch.randint(0, CLASSES, (8, H, W), generator=gen)
    rows = []
    for what, variants in (
        ("frozen-stage step (decoder, batch 8)",
         {f: make_decoder_step(f, feats, target) for f in (False, True)}),
        ("fine-tuning step (batch 8 crops)", {f: make_finetune_step(f) for f in (False, True)}),
    ):  # fmt: skip
        for fn in variants.values():
            fn()  # warm-up
        best = race({"two steps" if not f else "fused": fn for f, fn in variants.items()},
                    args.rounds)  # fmt: skip
        rows.append((what, best))
    with torch.no_grad():
        infer = {"two steps": make_infer(False, image), "fused": make_infer(True, image)}
        for fn in infer.values():
            fn()
        rows.append((f"inference forward (1 image {H}x{W})", race(infer, args.rounds * 2)))
    threads = torch.get_num_threads()
    print(f"Lite2 FCN-8s at input scale {SCALE}, {threads} threads, best of the rounds")
    print(table([{"what": w, "two steps": f"{b['two steps']:.3f} s", "fused": f"{b['fused']:.3f} s",
                  "speed-up": f"{b['two steps'] / b['fused']:.2f}x"} for w, b in rows],
                ["what", "two steps", "fused", "speed-up"]))  # fmt: skip
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
