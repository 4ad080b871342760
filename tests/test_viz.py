"""The pictures: measured on the drawn figures (overlaps, labels, ticks, font sizes), not by eye."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from fcnseg import viz
from fcnseg.data.info import DATASET1, DatasetInfo
from fcnseg.data.synthetic import render

SYNTHETIC = DatasetInfo(
    "synthetic",
    ("background", "disk", "box", "bar"),
    ((170, 170, 170), (220, 60, 60), (60, 200, 80), (70, 90, 230)),
)


def _draw(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _text(fig, content: str) -> Text:
    found = [t for t in fig.findobj(Text) if t.get_text() == content and t.get_visible()]
    assert len(found) == 1, (content, len(found))
    return found[0]


def _rows(size: tuple[int, int], info: DatasetInfo, n: int = 4):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        image, mask = render(rng, *size)
        mask = np.where(mask == 255, info.ignore_index, mask % info.num_classes)
        rows.append((image, mask, np.roll(mask, 3, axis=1)))
    return rows


@pytest.mark.parametrize("size", [(360, 480), (96, 128), (200, 600)])
def test_row_titles_clear_the_pictures_above_and_below(size) -> None:
    titles = [f"0016E5_0{7959 + 2 * r}.png: mean IU 0.{r}12" for r in range(4)]
    fig = viz.triplet_figure(_rows(size, DATASET1), DATASET1, "worst images", titles)
    renderer = _draw(fig)
    figbox = fig.bbox
    rows = [sub.axes for sub in fig.subfigs[:4]]
    assert all(len(axes) == 3 for axes in rows)
    for r, title in enumerate(titles):
        box = _text(fig, title).get_window_extent(renderer)
        assert figbox.x0 <= box.x0 and box.x1 <= figbox.x1  # not cut off
        for axes in rows[max(0, r - 1) : r + 1]:  # the row above and its own row
            for ax in axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), (r, title)
        # The title is above its own row.
        assert box.y0 >= max(ax.get_window_extent(renderer).y1 for ax in rows[r])
    # Column names sit between the first row's title and its pictures.
    header = _text(fig, "truth").get_window_extent(renderer)
    assert not header.overlaps(_text(fig, titles[0]).get_window_extent(renderer))
    assert header.y0 >= rows[0][1].get_window_extent(renderer).y1
    # The legend is below the last row, inside the figure.
    legend = fig.subfigs[-1].legends[0].get_window_extent(renderer)
    assert legend.y1 <= min(ax.get_window_extent(renderer).y0 for ax in rows[-1])
    assert legend.y0 >= 0 and figbox.x0 <= legend.x0 and legend.x1 <= figbox.x1
    labels = [t.get_text() for t in fig.subfigs[-1].legends[0].get_texts()]
    assert labels == [*DATASET1.class_names, "void (ignored)"]


def test_triplet_panel_saves_a_png(tmp_path: Path) -> None:
    viz.triplet_panel(_rows((96, 128), SYNTHETIC, 2), SYNTHETIC, tmp_path / "t.png", title="t")
    w, h = Image.open(tmp_path / "t.png").size
    assert w == 900 and 500 < h < 1000


def _per_class_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_per_class_bars_show_values_zero_and_undefined_apart() -> None:
    iu = {"background": 0.91, "disk": 0.0, "box": None, "bar": 0.4242}
    fig = viz.per_class_figure(iu, SYNTHETIC)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() >= 0 and p.get_width() > 0]
    # One bar per defined class (the zero one has height 0), none at the undefined class.
    assert sorted(round(b.get_x() + b.get_width() / 2) for b in bars) == [0, 1, 3]
    heights = {round(b.get_x() + b.get_width() / 2): b.get_height() for b in bars}
    assert heights == {0: 0.91, 1: 0.0, 3: 0.4242}
    texts = _per_class_texts(fig)
    assert {"0.91", "0.00", "0.42", "n/a"} <= set(texts)
    na = next(t for t in ax.texts if t.get_text() == "n/a")
    assert round(na.get_position()[0]) == 2
    # The dashed mean line sits at the mean of the defined classes, with its value written.
    mean = (0.91 + 0.0 + 0.4242) / 3
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), mean)
    renderer = _draw(fig)
    right = [a for a in ax.child_axes if a.get_yticks().size]
    (tick,) = right[0].get_yticklabels()
    assert tick.get_text() == f"mean IU\n{mean:.3f}" and np.isclose(right[0].get_yticks()[0], mean)
    # Everything written is inside the picture.
    for t in [*ax.texts, tick, ax.title]:
        box = t.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    assert "n/a" in ax.get_title()


def test_per_class_bars_without_undefined_classes_have_a_plain_title(tmp_path: Path) -> None:
    iu = dict(zip(DATASET1.class_names, np.linspace(0.1, 0.9, 11).tolist(), strict=True))
    fig = viz.per_class_figure(iu, DATASET1)
    assert fig.axes[0].get_title() == "per-class IoU"
    assert len([t for t in _per_class_texts(fig) if t[:2] == "0."]) == 11
    viz.per_class_bar(iu, DATASET1, tmp_path / "p.png")
    assert (tmp_path / "p.png").is_file()


def _history(n: int, val_loss: bool = True) -> list[dict]:
    rows = []
    for e in range(1, n + 1):
        row = {"epoch": e, "train_loss": 2 / (e + 1), "mean_iu": 0.5, "pixel_acc": 0.8, "lr": 0.1}
        if val_loss:
            row["val_loss"] = 2.5 / (e + 1)
        rows.append(row)
    return rows


def _visible_ticks(ax) -> np.ndarray:
    lo, hi = ax.get_xlim()
    ticks = np.asarray(ax.get_xticks())
    return ticks[(ticks >= lo) & (ticks <= hi)]


@pytest.mark.parametrize("n", [1, 2, 7, 120])
def test_curves_have_whole_epoch_ticks(n: int) -> None:
    fig = viz.curves_figure(_history(n))
    _draw(fig)
    for ax in fig.axes:
        ticks = _visible_ticks(ax)
        assert ticks.size >= 1 and np.all(ticks == np.round(ticks)), ticks
        assert ticks.min() <= n and ticks.max() >= 1  # the data are in view
    if n == 1:
        assert _visible_ticks(fig.axes[0]).tolist() == [1.0]


def test_curves_show_validation_loss_and_name_the_split(tmp_path: Path) -> None:
    assert inspect.signature(viz.curves).parameters["val_split"].default == "val"
    fig = viz.curves_figure(_history(5), val_split="test")
    loss_ax, score_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["training loss", "test loss"]
    np.testing.assert_allclose(
        loss_ax.get_lines()[1].get_ydata(), [2.5 / (e + 1) for e in range(1, 6)]
    )
    assert "test" in score_ax.get_title() and "test" in score_ax.get_ylabel()
    assert "validation" not in score_ax.get_ylabel()
    # Older rows without val_loss (or with an empty cell) still draw.
    mixed = _history(2, val_loss=False) + [{**r, "epoch": r["epoch"] + 2} for r in _history(2)]
    mixed[0]["val_loss"] = ""
    fig = viz.curves_figure(mixed)
    line = fig.axes[0].get_lines()[1]
    assert line.get_label() == "val loss" and np.isnan(line.get_ydata()[:2]).all()
    fig = viz.curves_figure(_history(3, val_loss=False))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["training loss"]
    viz.curves(_history(3), tmp_path / "c.png", val_split="test")
    assert (tmp_path / "c.png").is_file()


@pytest.mark.parametrize("info", [SYNTHETIC, DATASET1], ids=["4 classes", "11 classes"])
def test_confusion_numbers_are_readable(info: DatasetInfo) -> None:
    n = info.num_classes
    cm = np.random.default_rng(0).integers(200, 1000, (n, n)) + np.eye(n, dtype=int) * 20000
    cm[0, 1] = 0
    fig = viz.confusion_figure(cm, info)
    ax = fig.axes[0]
    renderer = _draw(fig)
    numbers = [t for t in ax.texts if t.get_text()[:2] in ("0.", "1.")]
    assert len(numbers) == n * n - 1  # the zero cell stays blank
    cell = ax.get_window_extent(renderer).width / n
    for t in numbers:
        assert t.get_fontsize() >= 8
        box = t.get_window_extent(renderer)
        assert box.width < 0.9 * cell and box.height < 0.9 * cell
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        assert label.get_fontsize() >= 8
        box = label.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.y0 >= fig.bbox.y0
    assert fig.dpi == viz.DPI


def test_legend_picture_keeps_the_labels_and_lists_the_classes_present() -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[:, 20:] = 2
    labels[:5, :5] = 255
    pic = viz.legend_picture(labels, SYNTHETIC)
    h, w = labels.shape
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[0] > h and pic.shape[1] >= w
    left = (pic.shape[1] - w) // 2
    np.testing.assert_array_equal(pic[:h, left : left + w], viz.colorize(labels, SYNTHETIC))
    strip = pic[h:].reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(strip, axis=0).tolist()}
    present = {SYNTHETIC.palette[0], SYNTHETIC.palette[2], viz.VOID_COLOR}
    assert present <= colours
    assert SYNTHETIC.palette[1] not in colours and SYNTHETIC.palette[3] not in colours
    assert [n for n, _ in viz.legend_entries(SYNTHETIC, labels)] == [
        "background",
        "box",
        "void (ignored)",
    ]


def test_one_legend_model_with_shares_and_void() -> None:
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[:, 6:] = 2
    labels[0, :5] = 255
    every = viz.legend(SYNTHETIC)
    assert [e.name for e in every][-1] == "void (ignored)" and every[0].share is None
    assert len(every) == SYNTHETIC.num_classes + 1
    present = viz.legend(SYNTHETIC, labels)
    assert [(e.label, e.pixels) for e in present] == [(0, 55), (2, 40), (255, 5)]
    assert abs(sum(e.share for e in present) - 1) < 1e-9
    ranked = viz.legend(SYNTHETIC, labels, absent=True, by_share=True)
    assert [e.label for e in ranked] == [0, 2, 255, 1, 3] and ranked[-1].share == 0
    assert [(e.name, e.rgb) for e in present] == viz.legend_entries(SYNTHETIC, labels)


def test_legend_picture_on_an_image_and_with_many_classes() -> None:
    labels = np.arange(11, dtype=np.uint8).repeat(40).reshape(1, -1).repeat(30, axis=0)
    image = np.full((*labels.shape, 3), 100, np.uint8)
    pic = viz.legend_picture(labels, DATASET1, image=image, alpha=0.3)
    h, w = labels.shape
    np.testing.assert_array_equal(pic[:h, :w], viz.overlay(image, labels, DATASET1, 0.3))
    strip = pic[h:]
    colours = {tuple(c) for c in np.unique(strip.reshape(-1, 3), axis=0).tolist()}
    assert set(DATASET1.palette) <= colours and viz.VOID_COLOR not in colours - {(0, 0, 0)}
    # Eleven names do not fit on one line of a 440-pixel picture: the legend wraps.
    rows_with_ink = np.nonzero((strip != 255).any(axis=(1, 2)))[0]
    assert rows_with_ink.size and np.diff(rows_with_ink).max() > 1


def test_legend_picture_widens_for_a_tiny_image() -> None:
    labels = np.ones((6, 8), np.uint8)
    pic = viz.legend_picture(labels, SYNTHETIC)
    assert pic.shape[1] > 8  # wide enough for "disk" and its swatch
    left = (pic.shape[1] - 8) // 2
    np.testing.assert_array_equal(pic[:6, left : left + 8], viz.colorize(labels, SYNTHETIC))
    assert (pic[:6, :left] == 255).all()


def test_legend_handles_name_every_class_and_void() -> None:
    handles = viz.legend_handles(DATASET1)
    assert [h.get_label() for h in handles] == [*DATASET1.class_names, "void (ignored)"]
    assert (
        tuple(np.round(np.array(handles[8].get_facecolor()[:3]) * 255).astype(int))
        == (DATASET1.palette[8])
    )


@pytest.mark.parametrize("per_class", [{"a": 0.5, "b": None}, {"a": 0.0}])
def test_per_class_bars_fit_with_few_classes(per_class) -> None:
    info = DatasetInfo("x", ("a", "b"), ((200, 0, 0), (0, 0, 200)))
    fig = viz.per_class_figure(per_class, info)
    renderer = _draw(fig)
    for t in [*fig.axes[0].texts, fig.axes[0].title]:
        box = t.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


def test_void_is_not_drawn_in_a_class_colour() -> None:
    """A palette with a black class (a newcomer's background) gets void in another colour, in
    the pictures and their legends alike."""
    from fcnseg.data.info import DatasetInfo

    info = DatasetInfo(
        name="pets",
        class_names=("background", "cat"),
        palette=((0, 0, 0), (255, 0, 255)),
    )
    labels = np.array([[0, 1, info.ignore_index]], dtype=np.uint8)
    void = tuple(viz.colorize(labels, info)[0, 2].tolist())
    assert void not in {(0, 0, 0), (255, 0, 255)}
    assert dict(viz.legend_entries(info, labels))["void (ignored)"] == void
    assert tuple(viz.colorize(labels, SYNTHETIC)[0, 2].tolist()) == viz.void_color(SYNTHETIC)
