"""A torch Dataset over image/mask pairs, shared by training, evaluation and prediction."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from fcnseg.data.info import DatasetInfo
from fcnseg.data.layout import Sample
from fcnseg.data.scan import Decoded, decode_pair
from fcnseg.data.transforms import SoftTarget


def to_tv_tensors(pair: Decoded) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
    """numpy arrays -> ``Image (3, H, W)`` uint8 and ``Mask (H, W)`` uint8, without copying."""
    image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(pair.image)).permute(2, 0, 1))
    mask = None if pair.mask is None else tv_tensors.Mask(torch.from_numpy(pair.mask))
    return image, mask


class SegmentationDataset(Dataset):
    """``(image, target)`` pairs: float ``(3, H, W)`` in [0, 1] and int64 ``(H, W)`` ids.

    Args:
        samples: the pairs, as found by :func:`fcnseg.data.layout.open_dataset`.
        info: dataset description (used to read and check masks).
        transform: a paired transform ``(image, mask) -> (image, mask)``.
        decoded: already decoded arrays (from a scan) to reuse instead of reading files again.
        soft: per sample, class probabilities ``(C, H, W)`` uint8 (a teacher's, for
            distillation); items are then ``(image, target, soft)``, the probabilities
            transformed with the mask (:class:`fcnseg.data.transforms.SoftTarget`).
    """

    def __init__(
        self,
        samples: list[Sample],
        info: DatasetInfo,
        transform: Callable,
        decoded: list[Decoded] | None = None,
        soft: list[np.ndarray] | None = None,
    ) -> None:
        if decoded is not None and len(decoded) != len(samples):
            raise ValueError("decoded must match samples one to one")
        if soft is not None and len(soft) != len(samples):
            raise ValueError("soft must match samples one to one")
        self.samples = samples
        self.info = info
        self.transform = transform
        self.decoded = decoded
        self.soft = soft

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        pair = self.decoded[index] if self.decoded is not None else None
        if pair is None:
            pair = decode_pair(self.samples[index], self.info)
        image, mask = to_tv_tensors(pair)
        if self.soft is None:
            image, mask = self.transform(image, mask)
            return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
        soft = SoftTarget(torch.from_numpy(self.soft[index]))
        image, mask, soft = self.transform(image, mask, soft)
        return tuple(t.as_subclass(torch.Tensor) for t in (image, mask, soft))
