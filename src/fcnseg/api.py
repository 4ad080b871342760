"""The Python API: load a trained model in one line, segment images in the next.

Example:
    >>> import fcnseg
    >>> seg = fcnseg.load("runs/d1/checkpoint_best.pt")  # doctest: +SKIP
    >>> labels = seg.predict("street.jpg")  # (H, W) uint8 class ids  # doctest: +SKIP
    >>> seg.classes[labels[100, 200]]  # doctest: +SKIP
    'road'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint
from fcnseg.data.info import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    autocast,
    check_scales,
    check_tiling,
    pick_device,
    predict_many,
    predict_probabilities,
)
from fcnseg.inputs import ImageInput, is_single_image, to_rgb, to_tensor


def load(
    checkpoint: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    backend: str = "auto",
    calibration: str | os.PathLike[str] | None = None,
) -> Segmenter:
    """A :class:`Segmenter` for a checkpoint written by ``fcnseg train``, or a built-in model.

    Args:
        checkpoint: path of the checkpoint (it names its architecture, classes and palette, so
            nothing else is needed; it is read with ``weights_only=True``: no pickled code runs).
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, ``"bf16"`` (faster on CPUs with AVX512-BF16/AMX and on recent
            GPUs, labels agree with fp32 on most pixels) or ``"int8"`` (the export quantized
            once by NNCF and run by OpenVINO, CPU only).
        backend: ``"torch"``, ``"onnxruntime"`` / ``"openvino"`` (the model exported to ONNX
            once, cached beside the checkpoint, run by ONNX Runtime or OpenVINO), or
            ``"auto"``: the fastest of these installed for the precision on the CPU (see
            :data:`fcnseg.backends.AUTO_ORDER`), torch on a GPU.
        calibration: ``precision="int8"``: a folder of images to calibrate on (default: the
            checkpoint's own training images, where it records them).

    Raises:
        FcnsegError: a missing or unreadable checkpoint, an unknown device or precision.

    Example:
        >>> seg = fcnseg.load("runs/d1/checkpoint_best.pt", device="cpu")  # doctest: +SKIP
        >>> seg  # doctest: +SKIP
        Segmenter(fcn8s_efficientnet_lite0, 11 classes: sky, building, ..., device=cpu, fp32)
    """
    from fcnseg import zoo
    from fcnseg.backends import resolve_backend

    dev = pick_device(device)  # bad options fail before the (large) file is read
    autocast(precision, dev)
    resolve_backend(backend, precision, dev)
    ckpt = load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt, checkpoint)
    return Segmenter(
        model,
        info,
        device=dev,
        precision=precision,
        source=str(checkpoint),
        backend=backend,
        checkpoint_file=zoo.resolve(checkpoint),
        calibration=calibration,
    )


class Segmenter:
    """A trained segmentation model with what it needs to read images and show its labels.

    Made by :func:`load`. Every method takes images as file paths, PIL images, NumPy arrays
    (``(H, W, 3)`` uint8 RGB, ``(H, W, 4)`` RGBA, ``(H, W)`` grayscale, or floats in [0, 1]) or
    torch tensors (``(3, H, W)`` float in [0, 1] or uint8); files are read upright (EXIF
    orientation applied). Bad inputs raise a one-line :class:`fcnseg.errors.FcnsegError`.

    Attributes:
        model: the network, in eval mode on ``device`` (or its ONNX Runtime counterpart, see
            ``backend``); takes ``(N, 3, H, W)`` in [0, 1] and returns logits ``(N, C, H, W)``.
        backend: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``, what ``backend="auto"``
            resolved to.
        info: the dataset description stored in the checkpoint (classes, palette, ignore label).
        device: where the model runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
    """

    def __init__(
        self,
        model: nn.Module,
        info: DatasetInfo,
        *,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        source: str = "",
        backend: str = "torch",
        checkpoint_file: str | os.PathLike[str] | None = None,
        calibration: str | os.PathLike[str] | None = None,
    ) -> None:
        from fcnseg.backends import load_backend, resolve_backend

        self.device = pick_device(device)
        autocast(precision, self.device)  # checks the name
        self.arch = getattr(model, "arch", {}).get("name", type(model).__name__)
        self.backend = resolve_backend(backend, precision, self.device, checkpoint_file)
        self.model = load_backend(
            model,
            self.backend,
            precision=precision,
            device=self.device,
            checkpoint=checkpoint_file,
            calibration=calibration,
        )
        self.info = info
        self.precision = precision
        self.source = source

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names; label ``i`` is ``classes[i]``."""
        return self.info.class_names

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return self.info.num_classes

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        """One RGB colour (0-255) per class, as :meth:`colorize` uses them."""
        return self.info.palette

    @property
    def ignore_index(self) -> int:
        """The label of void pixels in the training masks (never predicted)."""
        return self.info.ignore_index

    def __repr__(self) -> str:
        names = ", ".join(self.classes[:4]) + (", ..." if self.num_classes > 4 else "")
        src = f", from {self.source!r}" if self.source else ""
        return (
            f"Segmenter({self.arch}, {self.num_classes} classes: {names}, device={self.device}, "
            f"{self.precision}, {self.backend}{src})"
        )

    def predict(
        self,
        x: ImageInput | Sequence[ImageInput],
        *,
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = 4,
    ) -> np.ndarray | list[np.ndarray]:
        """Class ids ``(H, W)`` uint8 at the input's size, for one image or a list of them.

        Args:
            x: one image, or a list/tuple of images (the result is then a list, in order).
            tta_scales: test-time augmentation: average the class probabilities over the image
                resized by each scale, e.g. ``(0.75, 1, 1.25, 1.5)``; ``(1.0,)``: none.
            tta_flip: test-time augmentation: also average over the mirrored image.
            tile: images larger than this in a side are segmented in ``tile x tile`` windows,
                so memory stays bounded whatever the image size.
            overlap: pixels shared by neighbouring windows (``tile > overlap >= 0``).
            batch_size: consecutive same-size images of a list run together by this many.

        Example:
            >>> labels = seg.predict("street.jpg")  # doctest: +SKIP
            >>> labels.shape, labels.dtype  # doctest: +SKIP
            ((360, 480), dtype('uint8'))
            >>> batch = seg.predict([pil_image, np.asarray(pil_image)], tta_flip=True)  # doctest: +SKIP
        """
        kw = self._options(tta_scales, tta_flip, tile, overlap)
        if is_single_image(x):
            return next(self._stream([x], batch_size, kw, single=True))[1]
        return [labels for _, labels in self._stream(x, batch_size, kw)]

    def predict_iter(
        self,
        inputs: Iterable[ImageInput],
        *,
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = 4,
    ) -> Iterator[tuple[Any, np.ndarray]]:
        """``(input, labels (H, W) uint8)`` for each input, in order, read lazily.

        For many files: memory holds one batch, whatever their number. Options as in
        :meth:`predict`.

        Example:
            >>> for path, labels in seg.predict_iter(sorted(Path("photos").glob("*.jpg"))):  # doctest: +SKIP
            ...     print(path, np.bincount(labels.ravel(), minlength=seg.num_classes))
        """
        kw = self._options(tta_scales, tta_flip, tile, overlap)
        return self._stream(inputs, batch_size, kw)

    def _stream(
        self, inputs: Iterable[ImageInput], batch_size: int, kw: dict, single: bool = False
    ) -> Iterator[tuple[Any, np.ndarray]]:
        items = ((x, to_tensor(x, _name(x, None if single else i))) for i, x in enumerate(inputs))
        return predict_many(
            self.model, items, batch_size=batch_size, precision=self.precision, **kw
        )

    def probabilities(
        self,
        x: ImageInput,
        *,
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
    ) -> np.ndarray:
        """Class probabilities ``(C, H, W)`` float32 for one image (they sum to 1 per pixel).

        Their argmax is :meth:`predict`'s labels (up to exact ties); their maximum is the
        model's confidence. Options as in :meth:`predict`.

        Example:
            >>> p = seg.probabilities("street.jpg")  # doctest: +SKIP
            >>> confidence = p.max(0)  # (H, W)  # doctest: +SKIP
            >>> shares = dict(zip(seg.classes, np.bincount(p.argmax(0).ravel(),
            ...     minlength=seg.num_classes) / p[0].size))  # doctest: +SKIP
        """
        if not is_single_image(x):
            raise FcnsegError("probabilities takes one image; call it once per image")
        kw = self._options(tta_scales, tta_flip, tile, overlap)
        image = to_tensor(x)
        with autocast(self.precision, self.device):
            return predict_probabilities(self.model, image, **kw)

    def colorize(self, labels: np.ndarray, *, legend: bool = False) -> np.ndarray:
        """Class ids ``(H, W)`` -> RGB ``(H, W, 3)`` uint8 in the palette's colours (void black).

        Args:
            labels: class ids, e.g. from :meth:`predict`.
            legend: add a white strip below naming each class present with its colour; the
                picture becomes ``(H + strip, max(W, legend width), 3)``, the ``H x W`` colours
                unchanged at the top (centred when the legend is wider).

        Example:
            >>> Image.fromarray(seg.colorize(seg.predict("street.jpg"), legend=True)).show()  # doctest: +SKIP
        """
        from fcnseg.viz import colorize, legend_picture

        labels = self._labels(labels)
        return legend_picture(labels, self.info) if legend else colorize(labels, self.info)

    def overlay(
        self, image: ImageInput, labels: np.ndarray, alpha: float = 0.5, *, legend: bool = False
    ) -> np.ndarray:
        """The colour-coded labels blended over the image: RGB ``(H, W, 3)`` uint8.

        Args:
            image: the image the labels are for (any accepted input).
            labels: class ids ``(H, W)``, e.g. from :meth:`predict`.
            alpha: weight of the colours, from 0 (image only) to 1 (colours only).
            legend: add the legend strip of :meth:`colorize`.
        """
        from fcnseg.viz import legend_picture, overlay

        rgb = to_rgb(image)
        labels = self._labels(labels)
        if labels.shape != rgb.shape[:2]:
            raise FcnsegError(
                f"labels are {labels.shape[1]}x{labels.shape[0]} but the image is "
                f"{rgb.shape[1]}x{rgb.shape[0]} (W x H)"
            )
        alpha = check_alpha(alpha)
        if legend:
            return legend_picture(labels, self.info, image=rgb, alpha=alpha)
        return overlay(rgb, labels, self.info, alpha=alpha)

    def _labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.dtype.kind not in "ui":
            raise FcnsegError(
                f"labels must be class ids (H, W) of an integer type, got {labels.dtype} "
                f"{labels.shape}"
            )
        return labels

    @staticmethod
    def _options(
        tta_scales: Sequence[float], tta_flip: bool, tile: int, overlap: int
    ) -> dict[str, Any]:
        check_tiling(tile, overlap)
        scales = check_scales(tta_scales)
        return {"tile": tile, "overlap": overlap, "scales": scales, "flip": bool(tta_flip)}


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """``alpha`` as a float; FcnsegError unless it lies in [0, 1]."""
    try:
        value = float(alpha)
    except (TypeError, ValueError) as exc:
        raise FcnsegError(f"{name} must be a number from 0 to 1, got {alpha!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise FcnsegError(f"{name} must be from 0 to 1, got {alpha!r}")
    return value


def _name(x: Any, index: int | None) -> str:
    """How messages refer to an input: its path, else its position in the list."""
    if isinstance(x, str | os.PathLike):
        return str(Path(x))
    return "image" if index is None else f"input {index}"
