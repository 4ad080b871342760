"""``fcnseg predict``: colour-coded predictions, raw label maps and overlays for any image size."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fcnseg.checkpoint import atomic_write, load_checkpoint, model_from_checkpoint
from fcnseg.commands.predict_video import add_video_arguments, predict_videos, split_videos
from fcnseg.commands.tta import add_tta_arguments, tta_options
from fcnseg.data.io import read_image, read_mask
from fcnseg.data.layout import IMAGE_SUFFIXES, list_images
from fcnseg.errors import DataError
from fcnseg.inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    autocast,
    pick_device,
    predict_batch,
    predict_labels,
    prepare,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images: colour-coded prediction, label map and overlay per image",
        description="Segment images of any size and format. For each input writes "
        "{stem}_predict.png (colour-coded), {stem}_label.png (raw class ids, same HxW as the "
        "input) and {stem}_overlay.png; with --truth, also {stem}_original.png, {stem}_true.png "
        "and {stem}_triplet.png (original | truth | prediction with a legend). Images larger than "
        "--tile in a side are processed in overlapping tiles, so memory is bounded by one tile.",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by fcnseg train")
    p.add_argument("--input", required=True, nargs="+", help="image files and/or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--truth", help="folder of label masks named like the inputs (for triplets)")
    p.add_argument(
        "--tile", type=int, default=DEFAULT_TILE, help=f"tile size (default {DEFAULT_TILE})"
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"tile overlap (default {DEFAULT_OVERLAP})",
    )
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16 is faster on CPUs with AVX512-BF16/AMX (default fp32)",
    )
    p.add_argument(
        "--batch-size", type=int, default=4, help="same-size images run together (default 4)"
    )
    add_tta_arguments(p)
    add_video_arguments(p)
    p.set_defaults(func=run)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images; DataError for what does not exist."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(
            f"no images found in {', '.join(inputs)} ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def _save_png(array: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def _find_truth(folder: Path, stem: str) -> Path | None:
    for p in folder.glob(f"{stem}.*"):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    return None


def run(args: argparse.Namespace) -> int:
    tta = tta_options(args)  # bad options fail before any work
    ckpt = load_checkpoint(args.checkpoint)
    model, info = model_from_checkpoint(ckpt, args.checkpoint)
    device = pick_device(args.device)
    model = prepare(model, device)
    files, videos = split_videos(collect_inputs(args.input))  # videos by suffix
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth_dir = Path(args.truth) if args.truth else None
    if truth_dir is not None and not truth_dir.is_dir():
        raise DataError(f"{truth_dir}: truth folder not found")
    with (
        tqdm(total=len(files), desc="predicting", unit="image") as bar,
        autocast(args.precision, device),
    ):
        for chunk_start in range(0, len(files), max(1, args.batch_size)):
            chunk = files[chunk_start : chunk_start + max(1, args.batch_size)]
            rgbs = [read_image(p) for p in chunk]
            images = [torch.from_numpy(rgb).permute(2, 0, 1).float().div(255) for rgb in rgbs]
            same = len({im.shape for im in images}) == 1 and max(images[0].shape[1:]) <= args.tile
            if same:
                all_labels = list(predict_batch(model, torch.stack(images), **tta))
            else:
                all_labels = [
                    predict_labels(model, im, tile=args.tile, overlap=args.overlap, **tta)
                    for im in images
                ]
            for path, rgb, labels in zip(chunk, rgbs, all_labels, strict=True):
                _write_outputs(path, rgb, labels, info, out, truth_dir)
                bar.update(1)
    if files:
        print(f"{len(files)} image(s) -> {out}")
    if videos:
        predict_videos(args, videos, out, tta)
    return 0


def _write_outputs(
    path: Path, rgb: np.ndarray, labels: np.ndarray, info, out: Path, truth_dir: Path | None
) -> None:
    """Colour-coded prediction, label map and overlay (and triplet files with a truth folder)."""
    from fcnseg.viz import colorize, overlay, triplet_panel

    stem = path.stem
    _save_png(colorize(labels, info), out / f"{stem}_predict.png")
    _save_png(labels, out / f"{stem}_label.png")
    _save_png(overlay(rgb, labels, info), out / f"{stem}_overlay.png")
    if truth_dir is not None:
        truth_path = _find_truth(truth_dir, stem)
        if truth_path is None:
            raise DataError(f"{path}: no mask named {stem}.* in {truth_dir}")
        truth = read_mask(truth_path, info)
        _save_png(rgb, out / f"{stem}_original.png")
        _save_png(colorize(truth, info), out / f"{stem}_true.png")
        triplet_panel([(rgb, truth, labels)], info, out / f"{stem}_triplet.png", title=stem)
