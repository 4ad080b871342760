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
    dtype = _index_dtype(like)
    y = torch.arange(out_len, device=like.device, dtype=dtype)
    x = torch.arange(in_len, device=like.device, dtype=dtype)
    tap = y[:, None] + factor // 2 - x[None, :] * factor  # kernel index feeding y from x
    return (1 - (tap - (factor - 0.5)).abs() / factor).clamp(min=0).to(like.dtype)


def _index_dtype(like: Tensor) -> torch.dtype:
    """Pixel indices in at least fp32: bf16 counts exactly only to 256 (fp16 to 2048), so a
    matrix built in them under autocast would mix up the columns of a 480-pixel-wide image."""
    return torch.float32 if like.dtype in (torch.float16, torch.bfloat16) else like.dtype


def resize_matrix(out_len: int, in_len: int, like: Tensor) -> Tensor:
    """Matrix ``(out_len, in_len)`` of 1-D bilinear resizing as ``F.interpolate`` does it
    (``align_corners=False``, no antialiasing): output pixel ``y`` reads the input at
    ``(y + 0.5) * in_len / out_len - 0.5``, clamped to the first pixel, from its two neighbours.

    Built from tensor ops only, so it follows dynamic sizes in tracing and ONNX export.
    """
    dtype = _index_dtype(like)
    y = torch.arange(out_len, device=like.device, dtype=dtype)
    x = torch.arange(in_len, device=like.device, dtype=dtype)
    src = ((y + 0.5) * (in_len / out_len) - 0.5).clamp(min=0)
    lo = src.floor().clamp(max=in_len - 1)
    hi = (lo + 1).clamp(max=in_len - 1)
    frac = (src - lo)[:, None]
    at_lo = (x[None, :] == lo[:, None]).to(dtype)
    at_hi = (x[None, :] == hi[:, None]).to(dtype)
    return ((1 - frac) * at_lo + frac * at_hi).to(like.dtype)


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

    def forward(
        self, x: Tensor, size: tuple[int, int], resize_to: tuple[int, int] | None = None
    ) -> Tensor:
        """``(N, C, h, w)`` -> ``(N, C, *size)`` with ``size <= (h * factor, w * factor)``.

        With ``resize_to``, the result is then resized bilinearly to that size (as
        ``F.interpolate`` with ``align_corners=False``), in the same two products: the
        ``size`` grid is never materialised (for ``input_scale`` 1.5 it has 2.25 times the
        pixels of the output).
        """
        uh = interpolation_matrix(size[0], x.shape[-2], self.factor, x)
        uw = interpolation_matrix(size[1], x.shape[-1], self.factor, x)
        if resize_to is not None:
            uh = resize_matrix(resize_to[0], size[0], x) @ uh
            uw = resize_matrix(resize_to[1], size[1], x) @ uw
        return uh @ x @ uw.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
