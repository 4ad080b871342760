"""Bilinear upsampling as in the FCN paper: transposed convolutions with a bilinear kernel."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def bilinear_kernel(kernel_size: int) -> Tensor:
    """The 2-D bilinear interpolation kernel ``(kernel_size, kernel_size)`` (Caffe's filler)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    k1 = 1 - (og - center).abs() / factor
    return (k1[:, None] * k1[None, :]).float()


def bilinear_conv_transpose(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ``factor``-times upsampler initialised to per-channel bilinear interpolation.

    Kernel ``2 * factor``, stride ``factor``, padding ``factor // 2``: an input of size ``n`` gives
    exactly ``n * factor`` with every output pixel centred on its input footprint.
    """
    up = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        up.weight.zero_()
        kernel = bilinear_kernel(2 * factor)
        for c in range(channels):
            up.weight[c, c] = kernel
    return up


def interpolation_matrix(out_len: int, in_len: int, factor: int, like: Tensor) -> Tensor:
    """Matrix ``(out_len, in_len)`` of a 1-D bilinear transposed convolution (kernel 2f, stride f).

    Built from tensor ops only, so it follows dynamic sizes in tracing and ONNX export.
    """
    y = torch.arange(out_len, device=like.device, dtype=like.dtype)
    x = torch.arange(in_len, device=like.device, dtype=like.dtype)
    tap = y[:, None] + factor // 2 - x[None, :] * factor  # kernel index feeding y from x
    return (1 - (tap - (factor - 0.5)).abs() / factor).clamp(min=0)


class BilinearUpsample(nn.Module):
    """Fixed bilinear upsampling by ``factor``, cropped to the requested size.

    Equal to a bilinear :func:`bilinear_conv_transpose` followed by a top-left crop, but computed
    as two small matrix products (rows, then columns) and only for the output pixels kept: the
    final upsampling to full resolution is otherwise a large share of an FCN's step time.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"factor must be an even integer >= 2, got {factor}")
        self.factor = factor

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``(N, C, h, w)`` -> ``(N, C, *size)`` with ``size <= (h * factor, w * factor)``."""
        uh = interpolation_matrix(size[0], x.shape[-2], self.factor, x)
        uw = interpolation_matrix(size[1], x.shape[-1], self.factor, x)
        return uh @ x @ uw.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
