"""The web app: upload a photo (or pick an example) and see its segmentation in the browser.

Built on Gradio (``pip install 'fcnseg[app]'``), served from this machine only: the page's
scripts, styles and fonts come from the installed package, analytics are off, and the server
listens on 127.0.0.1 unless told otherwise. The page shows the labels over the photo (with an
opacity slider), the colour label map, a legend with each class's share of the pixels, the time
taken, and a PNG of the class ids to download; options choose the model and test-time
augmentation. Photos run at the model's working scale and large ones in tiles, as
``fcnseg predict`` does, so a 12-megapixel phone photo takes about as long as a small one.

Example:
    >>> from fcnseg.app import serve
    >>> serve(["camvid_lite0"], port=7860)  # blocks; Ctrl-C stops it  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import html
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcnseg.errors import FcnsegError, first_line

# Inference options the page chooses itself (so ``fcnseg app`` has no flag for them):
# test-time augmentation is a choice on the page, and one photo runs at a time.
PAGE_OPTIONS = ("tta_scales", "tta_flip", "batch_size")
# Test-time augmentation choices: (scales, flip).
TTA_PRESETS: dict[str, tuple[tuple[float, ...], bool]] = {
    "off (fastest)": ((1.0,), False),
    "mirror (2x the work)": ((1.0,), True),
    "scales 0.75-1.5 + mirror (8x)": ((0.75, 1.0, 1.25, 1.5), True),
}
DISPLAY_MAX_SIDE = 2048  # pictures shown on the page are scaled down to this; downloads are not
MAX_UPLOAD = "50mb"
EXAMPLE_SEEDS = (1, 4)  # drawn street scenes that the CamVid models segment recognisably

CSS = """
.fcnseg-legend-title { font-size: 0.85em; color: #777; margin: 0 0 4px 8px; }
table.fcnseg-legend, table.fcnseg-legend tr { border: none !important; }
table.fcnseg-legend { border-collapse: collapse; width: 100%; }
table.fcnseg-legend td { border: none !important; padding: 1px 8px !important;
                         background: none !important; }
table.fcnseg-legend .swatch { display: inline-block; width: 1.1em; height: 1.1em;
                              border: 1px solid #444; vertical-align: middle; }
table.fcnseg-legend .bar { height: 0.75em; border-radius: 2px; }
table.fcnseg-legend tr.absent { color: #999; }
table.fcnseg-legend td.share { text-align: right; font-variant-numeric: tabular-nums;
                               width: 5em; }
"""


def _offline_gradio() -> Any:
    """Import Gradio with its telemetry off (the switch is read at import time)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as exc:
        raise FcnsegError(
            "the app needs Gradio: pip install 'fcnseg[app]' (or pip install gradio)"
        ) from exc
    return gr


def require_gradio() -> None:
    """FcnsegError naming the extra to install when Gradio is absent (cheap: no import)."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise FcnsegError("the app needs Gradio: pip install 'fcnseg[app]' (or pip install gradio)")


def check_port(host: str, port: int) -> None:
    """FcnsegError unless ``host:port`` can be listened on (checked before any model loads)."""
    if not 0 < port < 65536:
        raise FcnsegError(f"--port must be 1..65535, got {port}")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as exc:
        raise FcnsegError(f"cannot listen on {host}:{port} ({exc.strerror}); try --port") from exc


def example_images(folder: str | Path | None, out: Path) -> list[Path]:
    """The example pictures: the images in ``folder``, or drawn street scenes written to ``out``."""
    from fcnseg.data.pairs import images_in

    if folder is not None:
        return images_in(folder, "--examples")
    from fcnseg.data.street import render_street

    paths = []
    for seed in EXAMPLE_SEEDS:
        path = out / f"street_{seed}.png"
        Image.fromarray(render_street(seed)).save(path)
        paths.append(path)
    return paths


class Models:
    """The models the page offers, loaded on first use and kept (one lock: CPU-bound anyway)."""

    def __init__(self, checkpoints: Sequence[str], config: Any = None) -> None:
        from fcnseg import zoo
        from fcnseg.inference import make_config

        self.config = make_config(config)
        self.labels: dict[str, str] = {}
        for ckpt in checkpoints:
            self.labels[ckpt] = _model_label(ckpt)
        for model in zoo.builtin_models():
            self.labels.setdefault(model.name, _model_label(model.name))
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        return next(iter(self.labels))

    def get(self, key: str) -> Any:
        """The :class:`fcnseg.api.Segmenter` for ``key`` (a built-in name or a checkpoint)."""
        import fcnseg

        with self._lock:
            if key not in self.labels:
                raise FcnsegError(f"unknown model {key!r}")
            if key not in self._loaded:
                self._loaded[key] = fcnseg.load(key, **dataclasses.asdict(self.config))
            return self._loaded[key]


def _model_label(ckpt: str) -> str:
    from fcnseg import zoo

    builtin = zoo.find(ckpt) if not Path(ckpt).exists() else None
    if builtin is not None:
        miou = builtin.mean_iu
        score = f", mean IU {miou:.3f} on CamVid test" if miou is not None else ""
        return f"{ckpt} (built-in{score})"
    path = Path(ckpt)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


class _Recent:
    """Files written for download, of which only the last ``keep`` are kept on disk."""

    def __init__(self, folder: Path, keep: int = 32) -> None:
        self.folder, self._files = folder, deque[Path]()
        self._keep, self._count, self._lock = keep, 0, threading.Lock()

    def save_labels(self, labels: np.ndarray, stem: str) -> Path:
        with self._lock:
            self._count += 1
            path = self.folder / f"{self._count:05d}" / f"{stem}_label.png"
            path.parent.mkdir()
            self._files.append(path)
            while len(self._files) > self._keep:
                old = self._files.popleft()
                old.unlink(missing_ok=True)
                old.parent.rmdir()
        Image.fromarray(labels).save(path)  # lossless: the class ids exactly
        return path


def legend_html(info: Any, labels: np.ndarray) -> str:
    """The legend of a label map: each class's colour, name and share of the pixels, largest
    share first, from the legend model every picture uses (:func:`fcnseg.viz.legend`): absent
    classes listed too (greyed), void only where present (a prediction has none).

    Rows carry ``data-class`` and ``data-pixels`` so tests (and scripts) can read them.
    """
    from fcnseg.viz import legend

    rows = []
    for e in legend(info, labels, absent=True, by_share=True):
        if e.label == info.ignore_index and not e.pixels:
            continue
        name, (r, g, b) = html.escape(e.name), e.rgb
        shown = "–" if not e.pixels else "<0.1%" if e.share < 0.001 else f"{e.share:.1%}"
        rows.append(
            f'<tr class="{"present" if e.pixels else "absent"}" data-class="{name}" '
            f'data-pixels="{int(e.pixels)}"><td style="width: 1.5em"><span class="swatch" '
            f'style="background: rgb({r}, {g}, {b})"></span></td><td>{name}</td>'
            f'<td class="share">{shown}</td><td style="width: 45%">'
            f'<div class="bar" style="width: {e.share * 100:.2f}%; '
            f'background: rgb({r}, {g}, {b})"></div></td></tr>'
        )
    return (
        '<div class="fcnseg-legend-title">classes, by share of the pixels</div>'
        f'<table class="fcnseg-legend"><tbody>{"".join(rows)}</tbody></table>'
    )


def _for_display(picture: np.ndarray) -> np.ndarray:
    """A picture ``(H, W, 3)`` scaled down so that its long side is at most DISPLAY_MAX_SIDE."""
    h, w = picture.shape[:2]
    if max(h, w) <= DISPLAY_MAX_SIDE:
        return picture
    scale = DISPLAY_MAX_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR))


def _read(path: str, name: str) -> np.ndarray:
    """The upload as RGB ``(H, W, 3)`` uint8, read as ``fcnseg predict`` reads files."""
    from fcnseg.inference.inputs import to_rgb

    return to_rgb(path, name)


class Handlers:
    """What the page's events run: segment an upload, re-blend the overlay."""

    def __init__(self, models: Models, downloads: _Recent) -> None:
        self.models, self.downloads = models, downloads

    def segment(
        self, upload: dict | None, model_key: str, tta: str, alpha: float
    ) -> tuple[Any, ...]:
        """Outputs: overlay, colour map, legend HTML, status Markdown, label PNG, state."""
        if not upload or not upload.get("path"):
            return None, None, "", "Upload a photo or pick an example.", None, None
        name = Path(upload.get("orig_name") or upload["path"]).name
        try:
            seg = self.models.get(model_key)
            rgb = _read(upload["path"], name)
            scales, flip = TTA_PRESETS.get(tta, TTA_PRESETS["off (fastest)"])
            start = time.perf_counter()
            labels = seg.predict(rgb, tta_scales=scales, tta_flip=flip)
            seconds = time.perf_counter() - start
        except FcnsegError as exc:  # about the server's copy: name the user's file instead
            text = str(exc).replace(str(Path(upload["path"])), name)
            return None, None, "", _problem(text), None, None
        except Exception as exc:  # the page gets one line; the console gets the details
            traceback.print_exc(file=sys.stderr)
            first = first_line(exc, 200)
            return None, None, "", _problem(f"{name}: {type(exc).__name__} {first}"), None, None
        h, w = labels.shape
        status = (
            f"**{html.escape(name)}**, {w}×{h} pixels, segmented in **{seconds:.2f} s** "
            f"on {seg.device} by {html.escape(self.models.labels[model_key])}, "
            f"test-time augmentation: {tta}."
        )
        state = {"rgb": rgb, "labels": labels, "model": model_key}
        return (
            _for_display(seg.overlay(rgb, labels, alpha=float(alpha))),
            _for_display(seg.colorize(labels)),
            legend_html(seg.info, labels),
            status,
            str(self.downloads.save_labels(labels, Path(name).stem or "upload")),
            state,
        )

    def reblend(self, state: dict | None, alpha: float) -> Any:
        """The overlay at a new opacity, from the labels already computed."""
        if not state:
            return None
        seg = self.models.get(state["model"])
        return _for_display(seg.overlay(state["rgb"], state["labels"], alpha=float(alpha)))


def _problem(text: str) -> str:
    return f"⚠️ **Could not segment this file.** {html.escape(text)}"


def build_app(
    checkpoints: Sequence[str],
    *,
    examples: Sequence[Path] = (),
    config: Any = None,
    work_dir: Path | None = None,
) -> Any:
    """The page as a ``gradio.Blocks``: the first of ``checkpoints`` is selected at start.

    Args:
        checkpoints: checkpoint files or built-in model names; the built-in models are offered
            too. The first is loaded now, so a bad one fails before the server starts.
        examples: pictures offered as one-click examples.
        config: the inference options (:class:`fcnseg.inference.InferenceConfig`: device,
            precision, backend, working scale, tiles); test-time augmentation is chosen on the
            page, and one photo runs at a time.
        work_dir: where label maps for download are written (default: a temporary folder).
    """
    models = Models(checkpoints, config)
    first = models.get(models.default)  # a bad checkpoint fails before Gradio is imported
    gr = _offline_gradio()
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="fcnseg-app-"))
    handlers = Handlers(models, _Recent(work_dir))
    # delete_cache: uploads older than an hour are removed hourly (all at the next start).
    with gr.Blocks(
        title="fcnseg: segment a photo", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as app:
        gr.Markdown(
            "## fcnseg: segment a photo\nUpload a photo (or pick an example): each pixel is "
            f"labelled as one of {len(first.classes)} classes ({', '.join(first.classes)}). "
            "Everything runs on this machine."
        )
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(
                    type="filepath",
                    sources=["upload", "clipboard"],
                    label="photo",
                    elem_id="input-image",
                )
                if examples:
                    gr.Examples(
                        [[str(p)] for p in examples],
                        inputs=[image],
                        label="examples (drawn street scenes; photos are segmented better)",
                        elem_id="examples",
                    )
                model = gr.Dropdown(
                    choices=[(label, key) for key, label in models.labels.items()],
                    value=models.default,
                    label="model",
                    elem_id="model",
                )
                tta = gr.Radio(
                    list(TTA_PRESETS),
                    value=next(iter(TTA_PRESETS)),
                    label="test-time augmentation",
                    elem_id="tta",
                )
                alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="opacity", elem_id="opacity")
            with gr.Column(scale=3):
                with gr.Row():
                    shown = {"format": "png", "buttons": ["download", "fullscreen"]}
                    overlay = gr.Image(label="labels over the photo", elem_id="overlay", **shown)
                    colour = gr.Image(label="label map", elem_id="labelmap", **shown)
                status = gr.Markdown("Upload a photo or pick an example.", elem_id="status")
                legend = gr.HTML(elem_id="legend", label="legend")
                labels_file = gr.File(
                    label="class ids (PNG, one value per pixel)", elem_id="labels-file"
                )
        state = gr.State()
        outputs = [overlay, colour, legend, status, labels_file, state]
        inputs = [image, model, tta, alpha]
        # preprocess=False: the upload reaches fcnseg's own reader, which refuses a non-image
        # with one clear line instead of Gradio's generic error.
        for event in (image.change, model.change, tta.change):
            event(handlers.segment, inputs, outputs, preprocess=False, show_progress="minimal")
        alpha.change(handlers.reblend, [state, alpha], overlay, show_progress="hidden")
    return app


def serve(
    checkpoints: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    examples: Sequence[Path] = (),
    config: Any = None,
    work_dir: Path | None = None,
) -> None:
    """Build the page and serve it at ``http://HOST:PORT`` until interrupted."""
    app = build_app(checkpoints, examples=examples, config=config, work_dir=work_dir)
    gr = _offline_gradio()
    app.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        share=False,
        inbrowser=False,
        show_error=False,
        quiet=True,
        footer_links=[],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size=MAX_UPLOAD,
        theme=gr.themes.Default(),
        css=CSS,
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"fcnseg app: serving http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    app.block_thread()
