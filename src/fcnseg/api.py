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

from fcnseg.checkpoint import model_from_checkpoint
from fcnseg.data.info import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.inference import (
    InferenceConfig,
    autocast,
    make_config,
    pick_device,
    predict_many,
    predict_probabilities,
    recorded_size,
    working_size,
)
from fcnseg.inference.inputs import ImageInput, expand, is_video_path, to_rgb, to_tensor
from fcnseg.inference.resize import size_for


def load(
    checkpoint: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    precision: str | None = None,
    backend: str | None = None,
    resize: str | int | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool | None = None,
    batch_size: int | None = None,
    calibration: str | os.PathLike[str] | None = None,
) -> Segmenter:
    """A :class:`Segmenter` for a checkpoint written by ``fcnseg train``, or a built-in model.

    Every option is declared once in :class:`fcnseg.inference.InferenceConfig` (the flags of
    ``fcnseg predict`` are generated from it): ``None`` means its declared default.

    Args:
        checkpoint: path of the checkpoint, or a built-in model's name such as ``camvid_lite2``
            (it names its architecture, classes and palette, so nothing else is needed; it is
            read with ``weights_only=True``: no pickled code runs).
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, ``"bf16"`` (faster on CPUs with AVX512-BF16/AMX and on recent
            GPUs, labels agree with fp32 on most pixels) or ``"int8"`` (the export quantized
            once by NNCF and run by OpenVINO, CPU only).
        backend: ``"torch"``, ``"onnxruntime"`` / ``"openvino"`` (the model exported to ONNX
            once, cached beside the checkpoint, run by ONNX Runtime or OpenVINO), or
            ``"auto"``: the fastest of these installed for the precision on the CPU (see
            :data:`fcnseg.inference.backends.AUTO_ORDER`), torch on a GPU.
        calibration: ``precision="int8"``: a folder of images to calibrate on (default: the
            checkpoint's own training images, where it records them).
        resize, tile, overlap, tta_scales, tta_flip, batch_size: this Segmenter's defaults for
            :meth:`Segmenter.predict` (which can override them per call).

    Raises:
        FcnsegError: a missing or unreadable checkpoint, an unknown option or a bad value.

    Example:
        >>> seg = fcnseg.load("camvid_lite2", device="cpu")  # doctest: +SKIP
        >>> seg  # doctest: +SKIP
        Segmenter(fcn8s_efficientnet_lite2, 11 classes: sky, building, ..., device=cpu, fp32)
    """
    from fcnseg import zoo

    given = {"device": device, "precision": precision, "backend": backend, "resize": resize,
             "tile": tile, "overlap": overlap, "tta_scales": tta_scales, "tta_flip": tta_flip,
             "batch_size": batch_size,
             "calibration": os.fspath(calibration) if calibration is not None else None}  # fmt: skip
    if isinstance(device, torch.device):
        given["device"] = str(device)
    config = make_config(None, given)
    config.runtime()  # bad options fail before the (large) file is read
    ckpt = zoo.load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt, checkpoint)
    return Segmenter(
        model,
        info,
        source=str(checkpoint),
        checkpoint_file=zoo.resolve(checkpoint),
        working_size=recorded_size(ckpt),
        config=config,
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
        config: the inference options (:class:`fcnseg.inference.InferenceConfig`) that
            :meth:`predict` and the other methods use where a call does not say.
        working_size: the long side in pixels that images are resized to with ``resize="auto"``
            (recorded in the checkpoint: the training images' typical size), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        info: DatasetInfo,
        *,
        device: str | torch.device | None = None,
        precision: str | None = None,
        source: str = "",
        backend: str | None = None,
        checkpoint_file: str | os.PathLike[str] | None = None,
        working_size: int | None = None,
        config: InferenceConfig | None = None,
    ) -> None:
        from fcnseg.inference.backends import load_backend, resolve_backend

        given = {"device": str(device) if device is not None else None}
        config = make_config(config, {**given, "precision": precision, "backend": backend})
        self.device = pick_device(config.device)
        autocast(config.precision, self.device)  # checks the name
        self.arch = getattr(model, "arch", {}).get("name", type(model).__name__)
        self.backend = resolve_backend(
            config.backend, config.precision, self.device, checkpoint_file
        )
        self.model = load_backend(
            model,
            self.backend,
            precision=config.precision,
            device=self.device,
            checkpoint=checkpoint_file,
            calibration=config.calibration,
        )
        self.info = info
        self.precision = config.precision
        self.source = source
        self.config = config
        self.working_size = working_size
        self._noted = False

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
        resize: str | int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tta_scales: Sequence[float] | None = None,
        tta_flip: bool | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Class ids ``(H, W)`` uint8 at the input's size, for one image or many.

        Each image runs at the model's working scale (``resize``) and its labels come back at
        the image's own size. Options left ``None`` take this Segmenter's (see :func:`load`).

        Args:
            x: one image; or a list/tuple of images, a folder (its images sorted by name) or a
                glob pattern such as ``"photos/*.jpg"`` (sorted): the result is then a list,
                one label map per image, in order.
            resize: ``"auto"`` (the size the model was trained at, recorded in the checkpoint),
                ``"none"`` (each image's own size) or a long side in pixels: each image is
                resized (aspect kept) to it, run, and its class scores resampled back.
            tile: images larger than this in a side (after resizing) are segmented in
                ``tile x tile`` windows, so memory stays bounded whatever the image size.
            overlap: pixels shared by neighbouring windows (``tile > overlap >= 0``).
            tta_scales: test-time augmentation: average the class probabilities over the image
                resized by each scale (relative to the working scale), e.g.
                ``(0.75, 1, 1.25, 1.5)``; ``(1.0,)``: none.
            tta_flip: test-time augmentation: also average over the mirrored image.
            batch_size: consecutive same-size images run together by this many.

        Example:
            >>> labels = seg.predict("street.jpg")  # doctest: +SKIP
            >>> labels.shape, labels.dtype  # doctest: +SKIP
            ((360, 480), dtype('uint8'))
            >>> every = seg.predict("photos/")  # one (H, W) per image, sorted  # doctest: +SKIP
        """
        kw = {"resize": resize, "tile": tile, "overlap": overlap, "tta_scales": tta_scales,
              "tta_flip": tta_flip, "batch_size": batch_size}  # fmt: skip
        if is_video_path(x):
            raise FcnsegError(
                f"{x} is a video: go through its frames with predict_iter({str(x)!r})"
            )
        single, inputs = expand(x)
        results = self._stream(inputs, self.config.replace(**kw), single=single)
        if single:
            return next(results)[1]
        return [labels for _, labels in results]

    def predict_iter(
        self,
        inputs: Iterable[ImageInput] | str | os.PathLike[str],
        *,
        resize: str | int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tta_scales: Sequence[float] | None = None,
        tta_flip: bool | None = None,
        batch_size: int | None = None,
    ) -> Iterator[tuple[Any, np.ndarray]]:
        """``(input, labels (H, W) uint8)`` for each input, in order, read lazily.

        ``inputs``: images (any iterable), a folder, a glob pattern, or a video file, whose
        frames come as ``(frame (H, W, 3) uint8, labels)``. Memory holds one batch, whatever
        the number of images or frames. Options as in :meth:`predict`.

        Example:
            >>> for path, labels in seg.predict_iter("photos/*.jpg"):  # doctest: +SKIP
            ...     print(path, np.bincount(labels.ravel(), minlength=seg.num_classes))
        """
        kw = {"resize": resize, "tile": tile, "overlap": overlap, "tta_scales": tta_scales,
              "tta_flip": tta_flip, "batch_size": batch_size}  # fmt: skip
        config = self.config.replace(**kw)
        items: Iterable[Any] = inputs
        if isinstance(inputs, str | os.PathLike):  # a folder, a pattern, a video or one file
            items = expand(inputs)[1]
        return self._stream(items, config)

    def _stream(
        self, inputs: Iterable[ImageInput], config: InferenceConfig, single: bool = False
    ) -> Iterator[tuple[Any, np.ndarray]]:
        items = ((x, to_tensor(x, _name(x, None if single else i))) for i, x in enumerate(inputs))
        return predict_many(
            self.model,
            items,
            batch_size=config.batch_size,
            precision=self.precision,
            size=self._size(config),
            **config.call_options(),
        )

    def _size(self, config: InferenceConfig) -> int | None:
        """The working size for ``config.resize``; says once what it assumes when ``auto``
        meets a checkpoint that records none."""
        if config.resize == "auto" and self.working_size is None and not self._noted:
            self._noted = True
            return size_for(config.resize, None, self.source or "this model")
        return working_size(config.resize, self.working_size)

    def probabilities(
        self,
        x: ImageInput,
        *,
        resize: str | int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tta_scales: Sequence[float] | None = None,
        tta_flip: bool | None = None,
    ) -> np.ndarray:
        """Class probabilities ``(C, H, W)`` float32 for one image (they sum to 1 per pixel),
        at the image's own size (the class scores are resampled from the working scale).

        Their argmax is :meth:`predict`'s labels (up to exact ties); their maximum is the
        model's confidence. Options as in :meth:`predict`.

        Example:
            >>> p = seg.probabilities("street.jpg")  # doctest: +SKIP
            >>> confidence = p.max(0)  # (H, W)  # doctest: +SKIP
        """
        if isinstance(x, list | tuple) or not expand(x)[0]:
            raise FcnsegError("probabilities takes one image; call it once per image")
        kw = {"resize": resize, "tile": tile, "overlap": overlap, "tta_scales": tta_scales,
              "tta_flip": tta_flip}  # fmt: skip
        config = self.config.replace(**kw)
        image = to_tensor(x)
        with autocast(self.precision, self.device):
            return predict_probabilities(
                self.model, image, size=self._size(config), **config.call_options()
            )

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
