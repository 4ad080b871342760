"""The frozen-feature cache: a frozen backbone's outputs computed once, reused every epoch.

When the frozen part sees the same inputs every epoch (no augmentation, or flips only, whose two
variants are both cached), recomputing it is wasted work: the trunk is most of an FCN's cost.
Features are kept in RAM as fp16 (checked to be finite in that type, else fp32). The cache lives
as long as the training process and is built from the frozen weights and decoded data of that
run, so it cannot go stale; unfreezing drops it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fcnseg.progress import progress_bar

FP16_MAX = 60000.0


def cacheable(freeze: str, augment: str) -> bool:
    """True when the frozen part's inputs are the same every epoch."""
    return freeze in ("features", "backbone") and augment in ("none", "flip")


@torch.no_grad()
def frozen_features(model: nn.Module, freeze: str, image: Tensor) -> dict[str, Tensor]:
    """What the frozen part outputs: pool3/pool4/pool5, or pool3/pool4/fc7 when fc6/fc7 are frozen."""
    feats = dict(model.encode(image))
    if freeze == "backbone":
        feats["fc7"] = model.neck(feats.pop("pool5"))
    return feats


class FeatureCache(Dataset):
    """Cached features and targets; with ``flips`` each item is randomly the image or its mirror."""

    def __init__(self, feats: dict[str, Tensor], targets: Tensor, flips: bool) -> None:
        self.feats, self.targets, self.flips = feats, targets, flips
        self.count = targets.shape[0] // (2 if flips else 1)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        if self.flips and torch.rand(()) < 0.5:
            index += self.count
        feats = {k: v[index].float() for k, v in self.feats.items()}
        return feats, self.targets[index].long()

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.feats.values())

    @classmethod
    def build(
        cls,
        model: nn.Module,
        freeze: str,
        dataset: Dataset,
        *,
        flips: bool,
        device: torch.device,
        batch_size: int = 4,
        half: bool = True,
        desc: str | None = None,
    ) -> FeatureCache:
        """Run the frozen part (eval mode) over ``dataset`` (same-size images) once.

        ``half`` stores features as fp16 (when finite in that type): half the memory, for the
        training cache. Validation keeps fp32 so that its metrics equal an uncached evaluation.
        """
        was_training = model.training
        model.eval()
        chunks: dict[str, list[Tensor]] = {}
        targets: list[Tensor] = []
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        variants = (False, True) if flips else (False,)
        with progress_bar(
            total=len(dataset) * len(variants), desc=desc, enabled=desc is not None
        ) as bar:
            for flip in variants:
                for image, target in loader:
                    if flip:
                        image, target = image.flip(-1), target.flip(-1)
                    # channels-last in (1.61x NCHW's speed for Lite2 on an idle 2-core Zen 3:
                    # benchmarks/bench_channels_last.py), NCHW out:
                    # the decoder trains on the cache as it did
                    image = image.to(device).contiguous(memory_format=torch.channels_last)
                    for k, v in frozen_features(model, freeze, image).items():
                        chunks.setdefault(k, []).append(v.contiguous().cpu())
                    targets.append(target.to(torch.uint8))  # ids and ignore label <= 255
                    bar.update(image.shape[0])
        model.train(was_training)  # a frozen part stays in eval mode: the model sees to it
        feats = {k: torch.cat(v) for k, v in chunks.items()}
        for k, v in feats.items():
            if half and v.abs().max() < FP16_MAX:
                feats[k] = v.half()
        return cls(feats, torch.cat(targets), flips)
