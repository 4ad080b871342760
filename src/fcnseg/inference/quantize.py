"""``--precision int8``: post-training quantization of the ONNX export by NNCF, run by OpenVINO.

Why NNCF over ONNX Runtime's static quantization: the int8 model has to be run by something
fast, and OpenVINO's CPU plugin runs NNCF's quantized graph on AMX-INT8 and VNNI with the same
fused, blocked-layout kernels that made it the fastest engine measured here for fp32 and bf16
(docs/benchmarks.md: 1.12-1.18x ONNX Runtime in fp32); NNCF is OpenVINO's own quantizer, so
the two are made to fit (which operations to quantize, which to fuse). ONNX Runtime's QDQ path
was not measured. NNCF quantizes the OpenVINO model read from the very ONNX file the other
backends use, so one export serves all.

Calibration: :data:`DEFAULT_CROPS` random crops (seeded) of :data:`CROP` pixels from the
checkpoint's own training images (the dataset root its run recorded; its ``train`` split), or from
a folder of images given as ``calibration``. The quantized model is cached beside the checkpoint
as ``STEM.KEY.int8.xml`` / ``.bin`` (OpenVINO IR), KEY over the checkpoint's digest, the
exporting code, the calibration images' bytes and the NNCF/OpenVINO versions; its stamp (in the
IR's ``rt_info``) records that key and the ``.bin``'s digest and is checked before use, as for the
ONNX cache (:mod:`fcnseg.inference.export_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.files import TMP_SUFFIX, file_digest
from fcnseg.inference.export_cache import (
    STAMP_KEY,
    cache_folder,
    cache_key,
    cacheable,
    check_record,
    parse_stamp,
    remove_older_exports,
    stamp,
)
from fcnseg.inference.openvino_backend import import_openvino

DEFAULT_CROPS = 300
CROP = 256


def calibration_images(model: nn.Module, calibration: str | Path | None) -> list[Path]:
    """The images to calibrate on: ``calibration`` (a folder of images), else the training split
    of the dataset the checkpoint's run recorded; a one-line FcnsegError where there are none."""
    from fcnseg.data.layout import open_dataset
    from fcnseg.data.pairs import images_in

    if calibration is not None:
        return images_in(calibration, "--calibration")
    root = getattr(model, "training_data", None)
    if root and Path(root).is_dir():
        try:
            return sorted(s.image for s in open_dataset(root, strict=False).split("train"))
        except FcnsegError:
            pass  # the recorded dataset has changed shape: ask for a folder instead
    where = f" ({root} is gone)" if root else ""
    raise FcnsegError(
        f"--precision int8 calibrates on the checkpoint's training images, which it does not "
        f"record or are not here{where}: pass --calibration DIR, a folder of images like the "
        "ones to segment"
    )


def calibration_crops(
    images: list[Path], count: int | None = None, size: int | None = None
) -> list:
    """``count`` crops ``(1, 3, size, size)`` float32 in [0, 1] (smaller where an image is), one
    per image taken evenly over ``images``, cycling when there are fewer; seeded. Defaults:
    :data:`DEFAULT_CROPS`, :data:`CROP`."""
    from fcnseg.data.io import read_image

    count, size = count or DEFAULT_CROPS, size or CROP
    rng = np.random.default_rng(0)
    picks = [images[int(i * len(images) / count) % len(images)] for i in range(count)]
    crops = []
    for path in picks:
        rgb = read_image(path)
        h, w = rgb.shape[:2]
        ch, cw = min(size, h), min(size, w)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = rgb[top : top + ch, left : left + cw]
        crops.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255)
    return crops


def _import_nncf():
    """NNCF, without the warning line its import makes torch print on a CPU-only install ("No
    CUDA runtime is found, using CUDA_HOME=...": true, and no concern of a CPU quantization)."""
    import logging

    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import nncf
    finally:
        quiet.setLevel(level)
    return nncf


def calibration_digest(images: list[Path], count: int, size: int) -> str:
    """SHA-256 over the calibration images' bytes, the crop settings and the quantizer's version."""
    ov = import_openvino()  # first: NNCF's telemetry is declined with OpenVINO's
    nncf = _import_nncf()

    h = hashlib.sha256(f"{count} {size} nncf {nncf.__version__} ov {ov.__version__}".encode())
    for path in images:
        h.update(file_digest(path).encode())
    return h.hexdigest()


def quantize(onnx_path: Path, crops: list) -> object:
    """The OpenVINO model of ``onnx_path`` quantized by NNCF on ``crops``."""
    ov = import_openvino()  # first: NNCF's telemetry is declined with OpenVINO's
    nncf = _import_nncf()

    source = ov.Core().read_model(str(onnx_path))
    return nncf.quantize(
        source,
        nncf.Dataset(crops),
        subset_size=len(crops),
        preset=nncf.QuantizationPreset.MIXED,
    )


def read_int8(xml: Path, digest: str, key: str) -> tuple[object | None, str]:
    """The cached int8 model at ``xml`` and ``""``, or None and why it is not used."""
    ov = import_openvino()

    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        return None, "missing"
    try:
        ov_model = ov.Core().read_model(str(xml))
        record = _rt_stamp(ov_model)
    except Exception as exc:  # empty, truncated, not an IR
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"unreadable ({first[:120]})"
    why = check_record(record, digest, key)
    if not why and record.get("bin_sha256") != file_digest(xml.with_suffix(".bin")):
        why = "its weights file is not the one it was written with"
    return (None, why) if why else (ov_model, "")


def write_int8(ov_model, xml: Path, record: dict[str, str]) -> None:
    """Save ``ov_model`` as ``xml``/``.bin`` with ``record`` and the ``.bin``'s digest in its
    stamp: written in a temporary folder beside it, then renamed into place (``.bin`` first)."""
    ov = import_openvino()

    tmp = xml.parent / f".{xml.stem}.xml.{secrets.token_hex(4)}{TMP_SUFFIX}"
    tmp.mkdir(parents=True)
    try:
        ov.save_model(ov_model, tmp / "m.xml", compress_to_fp16=False)
        stamped = json.loads(record[STAMP_KEY]) | {"bin_sha256": file_digest(tmp / "m.bin")}
        ov_model.set_rt_info(json.dumps(stamped, sort_keys=True), [STAMP_KEY])
        ov.save_model(ov_model, tmp / "m.xml", compress_to_fp16=False)
        if file_digest(tmp / "m.bin") != stamped["bin_sha256"]:
            raise OSError("OpenVINO wrote different weights twice")
        os.replace(tmp / "m.bin", xml.with_suffix(".bin"))
        os.replace(tmp / "m.xml", xml)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def int8_model(model: nn.Module, checkpoint: str | Path | None, calibration: str | Path | None):
    """The int8 OpenVINO model of ``model``: the checked cache beside ``checkpoint``, or quantized
    now (minutes for VGG16) and cached; without a checkpoint (or a writable folder), not cached."""
    from fcnseg.inference.backends import model_digest, open_export

    images = calibration_images(model, calibration)
    calib = calibration_digest(images, DEFAULT_CROPS, CROP)  # read at call time: tests shrink them
    xml = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        digest = model_digest(model, checkpoint)
        key = cache_key(digest, calib)
        xml = cache_folder(checkpoint, "onnx") / f"{checkpoint.stem}.{key[:16]}.int8.xml"
        cached, why = read_int8(xml, digest, key)
        if cached is not None:
            return cached
        if why != "missing":
            print(f"the cached int8 model {xml} is not used ({why}): quantizing again",
                  file=sys.stderr)  # fmt: skip
    crops = calibration_crops(images)
    print(f"quantizing to int8 on {len(crops)} crops of {len(images)} images, once (minutes "
          "for VGG16)", file=sys.stderr)  # fmt: skip
    with torch.no_grad():
        quantized = open_export(model, checkpoint, "OpenVINO", lambda p: quantize(p, crops))
    if xml is not None and cacheable(xml):
        try:
            write_int8(quantized, xml, stamp(checkpoint, digest, key, calibration=calib))
            remove_older_exports(xml, checkpoint, f"{checkpoint.stem}.*.int8.xml", _int8_stamp)
        except OSError as exc:
            print(f"cannot cache the int8 model ({exc}); it is used from memory", file=sys.stderr)
    return quantized


def _rt_stamp(ov_model) -> dict | None:
    """The stamp in an OpenVINO model's ``rt_info``, or None."""
    if not ov_model.has_rt_info([STAMP_KEY]):
        return None
    return parse_stamp(ov_model.get_rt_info([STAMP_KEY]).astype(str))


def _int8_stamp(xml: Path) -> dict | None:
    """The stamp of a cached int8 IR, or None."""
    ov = import_openvino()

    try:
        return _rt_stamp(ov.Core().read_model(str(xml)))
    except Exception:
        return None
