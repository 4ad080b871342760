"""Data loading vs training throughput: the loader must not be what training waits for.

Usage: python benchmarks/bench_loader.py [--batches 10] [--batch-size 8]
Loader images/s for the training pipeline (decoded images reused from RAM; --augment flip and
full) at 0 and 2 workers, next to the images/s of one training step of FCN-8s Lite0
(fine-tuning, full images) and of its head from the feature cache.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import dataset_root, table
from torch.utils.data import DataLoader

from fcnseg.data import SegmentationDataset, open_dataset, scan_split
from fcnseg.data.transforms import train_transform
from fcnseg.models import build_model


def loader_rate(ds, workers: int, batches: int, batch_size: int) -> float:
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    it = iter(loader)
    next(it)  # worker start-up is paid once per run, not per epoch
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        image, _ = next(it)
        n += image.shape[0]
    return n / (time.perf_counter() - t0)


def train_rate(batch_size: int, size: tuple[int, int], num_classes: int) -> float:
    model = build_model("fcn8s_efficientnet_lite0", num_classes=num_classes).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x, y = torch.rand(batch_size, 3, *size), torch.randint(0, num_classes, (batch_size, *size))
    F.cross_entropy(model(x), y).backward()  # warm-up
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    root, label = dataset_root()
    layout = open_dataset(root)
    t0 = time.perf_counter()
    scan = scan_split(layout.split("train"), layout.info)
    decode = len(scan.samples) / (time.perf_counter() - t0)
    rows = [{"what": "decode + check every pair once (threads)", "images/s": f"{decode:.0f}"}]
    for augment in ("flip", "full"):
        ds = SegmentationDataset(
            scan.samples,
            layout.info,
            train_transform(augment, layout.info.ignore_index, 320),
            scan.decoded,
        )
        for workers in (0, 2):
            rate = loader_rate(ds, workers, args.batches, args.batch_size)
            rows.append(
                {"what": f"loader, augment {augment}, {workers} workers", "images/s": f"{rate:.0f}"}
            )
    size = scan.uniform_size or (360, 480)
    rows.append(
        {
            "what": f"training step, FCN-8s Lite0 fine-tuning, {size[0]}x{size[1]}",
            "images/s": f"{train_rate(args.batch_size, size, layout.info.num_classes):.2f}",
        }
    )
    print(f"{label}: {len(scan.samples)} training images")
    print(table(rows, ["what", "images/s"]))


if __name__ == "__main__":
    main()
