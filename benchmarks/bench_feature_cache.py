"""Frozen-feature cache: a training epoch from cached features vs recomputing the frozen part.

Usage: python benchmarks/bench_feature_cache.py [--images 48] [--batch-size 8]
Runs on dataset1 (skips to synthetic data of the same size when it is absent). VGG16 uses random
weights (speed does not depend on them); Lite0 uses its offline ImageNet weights.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import dataset_root, table
from torch.utils.data import DataLoader

from fcnseg.data import SegmentationDataset, open_dataset, scan_split
from fcnseg.data.transforms import eval_transform
from fcnseg.engine import train_one_epoch
from fcnseg.models import build_model
from fcnseg.training.feature_cache import FeatureCache
from fcnseg.training.losses import build_loss
from fcnseg.training.setup import param_groups


def run(name: str, weights: str | None, freeze: str, ds, info, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, num_classes=info.num_classes, weights_backbone=weights)
    model.freeze(freeze)  # frozen parts stay in eval mode through model.train()
    optimizer = torch.optim.AdamW(param_groups(model, 1e-3, 1.0), lr=1e-3)
    loss_fn = build_loss("ce", info.ignore_index)

    def full(batch):
        image, target = batch
        return model(image), target

    def cached(batch):
        feats, target = batch
        return model.decode(feats, target.shape[-2:]), target

    model.train()
    t0 = time.perf_counter()
    train_one_epoch(full, DataLoader(ds, batch_size=batch_size, shuffle=True), optimizer, loss_fn)
    recompute = time.perf_counter() - t0
    t0 = time.perf_counter()
    cache = FeatureCache.build(model, freeze, ds, flips=False, device=torch.device("cpu"))
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_one_epoch(
        cached, DataLoader(cache, batch_size=batch_size, shuffle=True), optimizer, loss_fn
    )
    from_cache = time.perf_counter() - t0
    return {
        "model": name,
        "freeze": freeze,
        "images": len(ds),
        "recompute epoch (s)": f"{recompute:.1f}",
        "cache build (s)": f"{build:.1f}",
        "cached epoch (s)": f"{from_cache:.2f}",
        "epoch speed-up": f"{recompute / from_cache:.0f}x",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    root, label = dataset_root()
    layout = open_dataset(root)
    scan = scan_split(layout.split("train")[: args.images], layout.info)
    ds = SegmentationDataset(scan.samples, layout.info, eval_transform(), scan.decoded)
    print(
        f"{label}: {len(ds)} training images of {scan.uniform_size}, {torch.get_num_threads()} threads"
    )
    rows = [
        run("fcn8s_efficientnet_lite0", "imagenet", "backbone", ds, layout.info, args.batch_size),
        run("fcn8s_vgg16", None, "backbone", ds, layout.info, args.batch_size),
        run("fcn8s_vgg16", None, "features", ds, layout.info, args.batch_size),
    ]
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
