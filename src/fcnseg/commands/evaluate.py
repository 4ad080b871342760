"""``fcnseg evaluate``: the paper's metrics on a split, at the images' original resolution."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fcnseg.checkpoint import atomic_write, load_checkpoint, model_from_checkpoint
from fcnseg.commands.tta import add_tta_arguments, tta_options
from fcnseg.data import open_dataset, scan_split
from fcnseg.data.dataset import to_tv_tensors
from fcnseg.data.transforms import eval_transform
from fcnseg.errors import DataError
from fcnseg.inference import pick_device, predict_labels
from fcnseg.metrics import confusion_matrix, metrics_from_confusion


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IoU",
        description="Evaluate a checkpoint on a dataset split at the images' original resolution "
        "(ignore label excluded; classes absent from both truth and prediction left out of the "
        "means). Prints a table and writes confusion_matrix.png, per_class_iou.png and "
        "worst_images.png to --out.",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by fcnseg train")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    p.add_argument(
        "--out", help="folder for the pictures (default: eval_SPLIT beside the checkpoint)"
    )
    p.add_argument(
        "--worst", type=int, default=4, help="images in the worst-images panel (default 4)"
    )
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    add_tta_arguments(p)
    p.set_defaults(func=run)


def evaluate_checkpoint(
    checkpoint: str,
    data: str,
    split: str,
    device: str = "auto",
    scales: tuple[float, ...] = (1.0,),
    flip: bool = False,
) -> dict:
    """Metrics of a checkpoint on a split, plus the confusion matrix and per-image mean IU
    (``scales``/``flip``: test-time augmentation, see :func:`fcnseg.inference.class_scores`)."""
    ckpt = load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt, checkpoint)
    layout = open_dataset(data)
    if layout.info.class_names != info.class_names:
        raise DataError(
            f"{data}: classes {list(layout.info.class_names)} differ from the checkpoint's "
            f"{list(info.class_names)}"
        )
    scan = scan_split(layout.split(split), layout.info, progress=f"reading {split}")
    model = model.to(pick_device(device)).eval()
    transform = eval_transform()
    n = info.num_classes
    total = torch.zeros(n, n, dtype=torch.int64)
    per_image = []
    for sample, pair in tqdm(
        zip(scan.samples, scan.decoded, strict=True), total=len(scan.samples), desc="evaluating"
    ):
        image, mask = transform(*to_tv_tensors(pair))
        pred = torch.from_numpy(predict_labels(model, image, scales=scales, flip=flip))
        cm = confusion_matrix(pred, mask, n, info.ignore_index)
        total += cm
        per_image.append((metrics_from_confusion(cm)["mean_iu"], sample, pair, pred.numpy()))
    metrics = metrics_from_confusion(total, info.class_names)
    metrics["num_images"] = len(scan.samples)
    metrics["tta"] = {"scales": list(scales), "flip": flip}
    return {"metrics": metrics, "confusion": total.numpy(), "per_image": per_image, "info": info}


def format_table(metrics: dict) -> str:
    lines = [
        f"{'pixel accuracy':<24}{metrics['pixel_acc']:.4f}",
        f"{'mean accuracy':<24}{metrics['mean_acc']:.4f}",
        f"{'mean IU':<24}{metrics['mean_iu']:.4f}",
        f"{'frequency-weighted IU':<24}{metrics['fw_iu']:.4f}",
        "",
        f"{'class':<16}{'IoU':>8}{'accuracy':>10}",
    ]
    for name, iu in metrics["per_class_iu"].items():
        acc = metrics["per_class_acc"][name]
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"  # noqa: E731
        lines.append(f"{name:<16}{fmt(iu):>8}{fmt(acc):>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from fcnseg.viz import confusion_plot, per_class_bar, triplet_panel

    tta = tta_options(args)
    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.device, **tta)
    metrics, info = result["metrics"], result["info"]
    extra = "" if metrics["tta"] == {"scales": [1.0], "flip": False} else f", TTA {metrics['tta']}"
    print(f"{args.checkpoint} on {args.data} [{args.split}], {metrics['num_images']} images{extra}")
    print(format_table(metrics))
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    confusion_plot(result["confusion"], info, out / "confusion_matrix.png")
    per_class_bar(metrics["per_class_iu"], info, out / "per_class_iou.png")
    worst = sorted(result["per_image"], key=lambda r: np.nan_to_num(r[0], nan=1.0))[: args.worst]
    if worst:
        rows = [(pair.image, pair.mask, pred) for _, _, pair, pred in worst]
        titles = [f"{s.image.name}: mean IU {iu:.3f}" for iu, s, _, _ in worst]
        triplet_panel(rows, info, out / "worst_images.png", title="worst images", row_titles=titles)
    if args.json:
        keys = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "num_images", "tta")
        text = json.dumps({k: metrics[k] for k in keys}, indent=2)
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"pictures: {out}")
    return 0
