"""Drawn street scenes: example pictures for the app that need no photo (and no licence).

A one-point perspective street: sky, buildings with windows on both sides, sidewalks, a road
with lane marks, trees, poles and a car, with noise and soft edges so it looks less flat.
They only stand in for photos in the app's examples; a real photo is segmented better.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _jitter(
    rng: np.random.Generator, rgb: tuple[int, int, int], amount: int = 18, gray: bool = False
) -> tuple[int, ...]:
    """``rgb`` varied by up to ``amount`` per channel (the same for all three when ``gray``)."""
    shift = rng.integers(-amount, amount + 1, 1 if gray else 3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(rgb, np.resize(shift, 3), strict=True))


def _sky(height: int, width: int, horizon: int) -> np.ndarray:
    t = np.linspace(0, 1, max(1, horizon))[:, None, None]
    top, bottom = np.array([120, 160, 215]), np.array([205, 220, 235])
    sky = (1 - t) * top + t * bottom
    out = np.empty((height, width, 3), np.float32)
    out[:] = sky[-1]
    out[:horizon] = sky
    return out


def _facade(draw: ImageDraw.ImageDraw, rng: np.random.Generator, quad: list, color: tuple) -> None:
    """A building side as a quadrilateral ``[near_top, far_top, far_bottom, near_bottom]`` with
    rows of windows that shrink towards the vanishing point."""
    draw.polygon(quad, fill=color)
    (x0, y0t), (x1, y1t), (_, y1b), (_, y0b) = quad
    window = _jitter(rng, (60, 70, 85), 12)
    columns = int(rng.integers(5, 9))
    for i in range(columns):
        a, b = (i + 0.25) / columns, (i + 0.7) / columns
        xa, xb = x0 + (x1 - x0) * a, x0 + (x1 - x0) * b
        ta, tb = y0t + (y1t - y0t) * a, y0t + (y1t - y0t) * b
        ba, bb = y0b + (y1b - y0b) * a, y0b + (y1b - y0b) * b
        for r in range(1, 6):
            fa, fb = r / 6.5, (r + 0.5) / 6.5
            draw.polygon(
                [
                    (xa, ta + (ba - ta) * fa),
                    (xb, tb + (bb - tb) * fa),
                    (xb, tb + (bb - tb) * fb),
                    (xa, ta + (ba - ta) * fb),
                ],
                fill=window,
            )


def render_street(seed: int = 0, height: int = 360, width: int = 480) -> np.ndarray:
    """A drawn street scene ``(H, W, 3)`` uint8; each ``seed`` varies colours and layout."""
    rng = np.random.default_rng(seed)
    vx, horizon = width * rng.uniform(0.42, 0.58), int(height * rng.uniform(0.42, 0.5))
    img = Image.fromarray(_sky(height, width, horizon).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    leaves = Image.new("L", (width, height))  # where foliage is, to give it texture at the end
    road_left, road_right = -0.15 * width, 1.15 * width
    walk = 0.28 * width
    # Sidewalks, then the road between them, all converging at the vanishing point.
    draw.polygon(
        [(vx, horizon), (road_left - walk, height), (road_right + walk, height)],
        fill=_jitter(rng, (150, 145, 140), gray=True),
    )
    draw.polygon(
        [(vx, horizon), (road_left + 0.1 * width, height), (road_right - 0.1 * width, height)],
        fill=_jitter(rng, (95, 92, 98), 10, gray=True),
    )
    for k in range(6):  # dashed centre line
        a, b = (k + 0.3) / 6, (k + 0.6) / 6
        ya, yb = horizon + (height - horizon) * a**2, horizon + (height - horizon) * b**2
        wa, wb = 1 + 5 * a**2, 1 + 5 * b**2
        draw.polygon([(vx - wa, ya), (vx + wa, ya), (vx + wb, yb), (vx - wb, yb)], fill=(225,) * 3)
    # Buildings: one facade per side, its top line also converging.
    for side in (-1, 1):
        near_x = vx + side * 1.2 * width
        far_x = vx + side * rng.uniform(0.08, 0.14) * width
        top_near, top_far = (
            rng.uniform(-0.4, 0.05) * height,
            horizon - rng.uniform(0.1, 0.2) * height,
        )
        bottom_near = height * 1.25
        bottom_far = horizon + 0.02 * height
        color = _jitter(rng, (150, 110, 90) if side < 0 else (185, 175, 150), 25)
        _facade(
            draw,
            rng,
            [(near_x, top_near), (far_x, top_far), (far_x, bottom_far), (near_x, bottom_near)],
            color,
        )
    # Poles and trees along the sidewalks, a car on the road.
    for side in (-1, 1):
        for depth in rng.uniform(0.3, 0.9, int(rng.integers(1, 3))):
            x = vx + side * depth * 0.62 * width
            base = horizon + (height - horizon) * depth * 0.9
            top = base - depth * height * 0.75
            draw.rectangle([x - 1.5 * depth - 1, top, x + 1.5 * depth + 1, base], fill=(70, 70, 70))
        d = rng.uniform(0.35, 0.6)
        tx, ty = vx + side * d * 0.75 * width, horizon + (height - horizon) * d * 0.6
        r = d * height * 0.22
        draw.rectangle([tx - r * 0.08, ty, tx + r * 0.08, ty + r * 1.3], fill=(85, 60, 40))
        for _ in range(6):
            ox, oy = rng.normal(0, r * 0.35, 2)
            box = [tx + ox - r * 0.6, ty + oy - r * 1.3, tx + ox + r * 0.6, ty + oy - r * 0.1]
            draw.ellipse(box, fill=_jitter(rng, (70, 110, 50), 20))
            ImageDraw.Draw(leaves).ellipse(box, fill=255)
    d = rng.uniform(0.45, 0.7)
    cx, cy = vx + rng.uniform(-0.2, 0.2) * width * d, horizon + (height - horizon) * d
    cw, ch = 0.42 * width * d, 0.2 * height * d
    body = _jitter(rng, (40, 60, 140), 40)
    draw.rounded_rectangle([cx - cw / 2, cy - ch, cx + cw / 2, cy], radius=ch * 0.2, fill=body)
    draw.rounded_rectangle(
        [cx - cw * 0.35, cy - ch * 1.55, cx + cw * 0.35, cy - ch * 0.8], radius=ch * 0.2, fill=body
    )
    draw.rectangle([cx - cw * 0.3, cy - ch * 1.45, cx + cw * 0.3, cy - ch], fill=(60, 70, 80))
    for wx in (-0.33, 0.33):
        draw.ellipse(
            [cx + wx * cw - ch * 0.2, cy - ch * 0.2, cx + wx * cw + ch * 0.2, cy + ch * 0.2],
            fill=(25, 25, 25),
        )
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    noisy = np.asarray(img, np.float32) + rng.normal(0, 6, (height, width, 3))
    # Foliage: blotchy light and shade, as leaves have.
    shade = rng.uniform(0.45, 1.5, (height // 3 + 1, width // 3 + 1)).repeat(3, 0).repeat(3, 1)
    mask = np.asarray(leaves, np.float32)[..., None] / 255
    noisy *= 1 + mask * (shade[:height, :width, None] - 1)
    return np.clip(noisy, 0, 255).astype(np.uint8)
