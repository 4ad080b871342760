"""``fcnseg predict``: colour-coded predictions, raw label maps and overlays for any image size.

A thin layer over :class:`fcnseg.api.Segmenter`: it checks the options and paths, calls the
library, writes the files and reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcnseg.commands.predict_video import (
    add_video_arguments,
    check_video_outputs,
    predict_videos,
    split_videos,
)
from fcnseg.commands.tta import add_checkpoint_argument, add_inference_arguments, inference_config
from fcnseg.data.io import MAX_PIXELS_ENV, read_image, read_mask
from fcnseg.data.layout import list_images, pair_key
from fcnseg.data.pairs import IMAGE_SUFFIXES
from fcnseg.errors import DataError
from fcnseg.files import (
    Inputs,
    OutputError,
    check_output_file,
    check_writable_dir,
    same_file,
    save_png,
)
from fcnseg.inference.inputs import collect_files

MAX_WARNINGS = 10  # missing masks listed one per line up to this many, then counted


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images: colour-coded prediction, label map and overlay per image",
        description="Segment images of any size and format. For each input writes "
        "{name}_predict.png (colour-coded, with a legend of the classes found), "
        "{name}_label.png (raw class ids, same HxW as the input) and "
        "{name}_overlay.png (the colours over the image, weighted by --alpha, with the "
        "legend); with --truth, also {name}_original.png, {name}_true.png "
        "and {name}_triplet.png (original | truth | prediction with a legend). {name} is the "
        "input's stem; where two inputs share a stem (a.jpg and a.png, or one name in two "
        "folders) it is the file name, with as many parent folders as it takes to tell them "
        "apart (a.jpg, day_a.png). Each image is resized to the model's working scale (the "
        "size it was trained at; --resize), run there, and labelled at its own size; images "
        "larger than --tile in a side (after resizing) are processed in overlapping tiles, "
        "so memory is bounded by one tile. Photos are read upright (EXIF "
        f"orientation); images over 89,478,485 pixels are refused unless {MAX_PIXELS_ENV} "
        "allows more (0: no limit).",
    )
    add_checkpoint_argument(p)
    p.add_argument(
        "--input", required=True, nargs="+", help="image files, video files and/or folders"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--truth",
        help="folder of label masks named like the inputs (for triplets); an image without a "
        "mask gets a warning and no triplet",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="weight of the colours in the overlay, 0 (image only) to 1 (default 0.5)",
    )
    add_inference_arguments(p)
    add_video_arguments(p)
    p.set_defaults(func=run)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images (see :func:`fcnseg.inference.inputs.collect_files`)."""
    return collect_files(inputs)


def output_names(files: list[Path]) -> list[str]:
    """One distinct, readable output name per input file.

    The stem where no other input shares it (compared without case, as on case-insensitive
    disks); else the file name (``a.jpg``, ``a.png``), preceded by as many parent folders as it
    takes to tell the group apart (``day_a.png``, ``night_a.png``); a ``_2``, ``_3`` suffix as
    a last resort, so no two inputs ever write the same file.
    """
    stems = Counter(p.stem.casefold() for p in files)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(files):
        groups.setdefault(p.stem.casefold(), []).append(i)
    names = [p.stem for p in files]
    for stem, members in groups.items():
        if stems[stem] > 1:
            for i, name in zip(members, _distinct([files[i] for i in members]), strict=True):
                names[i] = name
    taken: set[str] = set()
    for i, name in enumerate(names):
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate.casefold())
        names[i] = candidate
    return names


def _distinct(paths: list[Path]) -> list[str]:
    """Each file name with the fewest parent folders (joined by ``_``) that sets it apart from
    the other ``paths`` at the same depth."""
    depth = max(len(p.parent.parts) for p in paths)
    by_depth = [[_named(p, d) for p in paths] for d in range(depth + 1)]
    folded = [[n.casefold() for n in row] for row in by_depth]
    names = []
    for i in range(len(paths)):
        d = next((d for d, row in enumerate(folded) if row.count(row[i]) == 1), depth)
        names.append(by_depth[d][i])
    return names


def _named(path: Path, depth: int) -> str:
    return "_".join([*_parents(path, depth), path.name])


def _parents(path: Path, depth: int) -> list[str]:
    parts = [q for q in path.parent.parts if q not in (path.anchor, ".", "..")]
    return parts[len(parts) - depth :] if depth else []


def find_truths(files: list[Path], truth_dir: Path) -> list[Path | None]:
    """The mask named like each input in ``truth_dir`` (a .png preferred), or None; Cityscapes'
    ``X_gtFine_labelIds.png`` is the mask of ``X_leftImg8bit.png``."""
    index: dict[str, Path] = {}
    for p in sorted(list_images(truth_dir), key=lambda p: (p.suffix.lower() != ".png", p.name)):
        index.setdefault(pair_key(p), p)
    return [index.get(pair_key(f)) for f in files]


def _check_options(args: argparse.Namespace):
    """Every option and path checked before anything is loaded or written."""
    from fcnseg.api import check_alpha

    config = inference_config(args)
    check_alpha(args.alpha, "--alpha")
    check_writable_dir(args.out, "output folder (--out)")
    if args.truth is not None and not Path(args.truth).is_dir():
        raise DataError(f"{args.truth}: truth folder not found")
    return config


def run(args: argparse.Namespace) -> int:
    from fcnseg.api import load

    config = _check_options(args)
    inputs = collect_inputs(args.input)
    names = dict(zip(inputs, output_names(inputs), strict=True))  # images and videos together
    files, videos = split_videos(inputs)  # each video is opened now: a bad one fails first
    check_video_outputs(args, videos, Path(args.out), names)
    truth_dir = Path(args.truth) if args.truth else None
    truths = find_truths(files, truth_dir) if truth_dir else [None] * len(files)
    if truth_dir is not None and files:
        _warn_about_truths(files, truths, truth_dir)
    check_outputs(Path(args.out), args.input, truth_dir, files, [names[f] for f in files], truths)
    seg = load(args.checkpoint, **dataclasses.asdict(config))
    out = Path(args.out)
    _mkdir(out)
    if files:
        _predict_images(seg, args, files, [names[f] for f in files], truths, out)
    if videos:
        tta = {"scales": config.tta_scales, "flip": config.tta_flip}
        predict_videos(seg, args, videos, out, tta, names)
    return 0


IMAGE_OUTPUTS = ("predict", "label", "overlay")
TRUTH_OUTPUTS = ("original", "true", "triplet")


def check_outputs(
    out: Path,
    given: list[str],
    truth_dir: Path | None,
    files: list[Path],
    names: list[str],
    truths: list[Path | None],
) -> None:
    """Before any work: the image outputs replace nothing but fcnseg's own earlier outputs.

    Refused: ``out`` being a folder given in ``--input`` or the ``--truth`` folder (the
    predictions would mix with the inputs and be read as inputs by the next run), an output that
    is one of the inputs or masks (by any name), and an existing file that fcnseg did not write.
    """
    folders = [(Path(g), "an input folder (--input)") for g in given if Path(g).is_dir()]
    if truth_dir is not None:
        folders.append((truth_dir, "the truth folder (--truth)"))
    for folder, role in folders:
        if same_file(out, folder):
            raise OutputError(
                f"{out}: the output folder (--out) is {role}; the predictions would mix with "
                "the inputs: choose another --out"
            )
    inputs = Inputs(("the input", f) for f in files)
    for t in truths:
        if t is not None:
            inputs.add("the truth mask", t)
    for name, truth in zip(names, truths, strict=True):
        for suffix in IMAGE_OUTPUTS + (TRUTH_OUTPUTS if truth is not None else ()):
            check_output_file(out / f"{name}_{suffix}.png", "prediction", inputs=inputs)


def _predict_images(
    seg,
    args: argparse.Namespace,
    files: list[Path],
    names: list[str],
    truths: list[Path | None],
    out: Path,
) -> None:
    """Segment the image files in batches and write each one's pictures as it comes."""
    truth_dir = Path(args.truth) if args.truth else None
    triplets = 0
    rgbs = (read_image(p) for p in files)  # decoded lazily, one batch at a time
    with tqdm(total=len(files), desc="predicting", unit="image") as bar:
        results = seg.predict_iter(rgbs)  # the options given to load() apply
        for path, name, truth, (rgb, labels) in zip(files, names, truths, results, strict=True):
            _write_prediction(seg, rgb, labels, out / name, args.alpha)
            if truth is not None:
                triplets += _write_triplet(seg, path, rgb, labels, truth, out / name)
            bar.update(1)
    done = f"{len(files)} image(s) -> {out}"
    if truth_dir is not None:
        done += f" ({triplets} with truth)"
    print(done)


def _warn_about_truths(files: list[Path], truths: list[Path | None], truth_dir: Path) -> None:
    """Refuse a truth folder that matches nothing; warn (one line each) about inputs without a
    mask and masks matched by several inputs (namesakes from different folders)."""
    missing = [f for f, t in zip(files, truths, strict=True) if t is None]
    if len(missing) == len(files):
        odd = _not_a_file(files[0], truth_dir)
        raise DataError(
            f"{odd}: named like the input {files[0].name} but not a regular file"
            if odd
            else f"{truth_dir}: no mask named like any input (e.g. {files[0].stem}.png for "
            f"{files[0].name})"
        )
    for f in missing[:MAX_WARNINGS]:
        odd = _not_a_file(f, truth_dir)
        _warn(f"{odd}: not a regular file; no triplet for {f}" if odd
              else f"{f}: no mask named {f.stem}.* in {truth_dir}; no triplet for it")  # fmt: skip
    if len(missing) > MAX_WARNINGS:
        _warn(f"{len(missing) - MAX_WARNINGS} more image(s) without a mask in {truth_dir}")
    shared = Counter(t for t in truths if t is not None)
    for mask, n in shared.items():
        if n > 1:
            names = ", ".join(str(f) for f, t in zip(files, truths, strict=True) if t == mask)
            _warn(f"{mask}: the truth of {n} inputs named alike ({names})")


def _not_a_file(image: Path, truth_dir: Path) -> Path | None:
    """A FIFO, device or folder in ``truth_dir`` named like ``image`` with an image suffix
    (looked at with stat only: a FIFO is never opened), or None."""
    for p in sorted(truth_dir.glob(glob.escape(image.stem) + ".*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_file():
            return p
    return None


def _warn(message: str) -> None:
    tqdm.write(f"fcnseg predict: warning: {message}", file=sys.stderr)


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from exc


def _save_png(array: np.ndarray, path: Path) -> None:
    # atomic_write turns a full disk or a permission problem into a one-line OutputError; the
    # PNG is marked as fcnseg's, so that a later run may replace it (and nothing else).
    save_png(array, path)


def _write_prediction(seg, rgb: np.ndarray, labels: np.ndarray, base: Path, alpha: float) -> None:
    """``{base}_predict.png`` (colours) and ``_overlay.png``, both with a legend, and
    ``_label.png`` (raw ids, the input's size)."""
    _save_png(seg.colorize(labels, legend=True), base.with_name(f"{base.name}_predict.png"))
    _save_png(labels, base.with_name(f"{base.name}_label.png"))
    overlay = seg.overlay(rgb, labels, alpha, legend=True)
    _save_png(overlay, base.with_name(f"{base.name}_overlay.png"))


def _write_triplet(
    seg, path: Path, rgb: np.ndarray, labels: np.ndarray, truth_path: Path, base: Path
) -> int:
    """Original, truth and the image | truth | prediction panel; 0 (and a warning) when the
    mask cannot be used, 1 when written."""
    from fcnseg.viz import triplet_panel

    try:
        truth = read_mask(truth_path, seg.info)
    except DataError as exc:
        _warn(f"{exc}; no triplet for {path.name}")
        return 0
    if truth.shape != labels.shape:
        _warn(
            f"{truth_path}: mask is {truth.shape[1]}x{truth.shape[0]} but {path.name} is "
            f"{labels.shape[1]}x{labels.shape[0]} (W x H); no triplet for it"
        )
        return 0
    _save_png(rgb, base.with_name(f"{base.name}_original.png"))
    _save_png(seg.colorize(truth), base.with_name(f"{base.name}_true.png"))
    title = path.name if base.name == path.stem else base.name  # namesakes told apart
    triplet_panel(
        [(rgb, truth, labels)], seg.info, base.with_name(f"{base.name}_triplet.png"), title=title
    )
    return 1
