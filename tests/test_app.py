"""fcnseg app in a real browser: headless Chromium (Debian's package, driven by Playwright) uploads
a photo, and the page's overlay, legend and class ids must be those of ``fcnseg predict``;
nothing is fetched from outside this machine, by the page or by the server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from random_model import random_checkpoint

from fcnseg import zoo
from fcnseg.app import legend_html
from fcnseg.cli import main
from fcnseg.inference import InferenceConfig

pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'fcnseg[app]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and none of the background traffic a closed network answers with errors.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Loaded into the app's Python (sitecustomize): logs every connection or name lookup that is
# not for this machine, so the test sees what the server tried to reach.
NET_AUDIT = textwrap.dedent(
    """
    import ipaddress, os, socket

    _LOG = os.environ["FCNSEG_NET_LOG"]
    _LOCAL_NAMES = {"localhost", "", None}

    def _local(host):
        if host in _LOCAL_NAMES:
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _note(what):
        with open(_LOG, "a") as f:
            f.write(what + "\\n")

    def _wrap(method):
        def checked(self, address, *args):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
                _note(f"{method.__name__} {address!r}")
            return method(self, address, *args)
        return checked

    socket.socket.connect = _wrap(socket.socket.connect)
    socket.socket.connect_ex = _wrap(socket.socket.connect_ex)
    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host.decode() if isinstance(host, bytes) else host):
            _note(f"getaddrinfo {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``fcnseg app`` in a subprocess on a free port: the best built-in model when one is
    shipped (the command's default), else a checkpoint given with --checkpoint (the one named
    by FCNSEG_APP_CHECKPOINT, or an untrained one with random score layers)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    root = tmp_path_factory.mktemp("app")
    (root / "audit").mkdir()
    (root / "audit" / "sitecustomize.py").write_text(NET_AUDIT)
    best = zoo.best()
    ckpt = os.environ.get("FCNSEG_APP_CHECKPOINT")  # e.g. to make the README's picture
    if ckpt is None:
        ckpt = best.name if best else str(random_checkpoint(root / "random.pt"))
    port = free_port()
    cmd = [sys.executable, "-m", "fcnseg", "app", "--port", str(port), "--device", "cpu"]
    cmd += [] if best and ckpt == best.name else ["--checkpoint", ckpt]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "audit"), src, os.environ.get("PYTHONPATH", "")]),
        "FCNSEG_NET_LOG": str(root / "net.log"),
        "GRADIO_TEMP_DIR": str(root / "gradio"),
        "TMPDIR": str(root / "tmp"),
    }
    (root / "tmp").mkdir()
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "serving http://" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fcnseg app did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield {
            "url": f"http://127.0.0.1:{port}/",
            "ckpt": ckpt,
            "net_log": root / "net.log",
            "log": log_path,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # SIGTERM stops it as Ctrl-C does: its folder of examples and downloads is gone.
    assert list((root / "tmp").glob("fcnseg-app-*")) == []


@pytest.fixture(scope="module")
def browser(server) -> Iterator:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _png(page, url: str) -> np.ndarray:
    response = page.request.get(url)
    assert response.ok, url
    return np.asarray(Image.open(BytesIO(response.body())))


def _above_legend(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The ``H x W`` picture of a predict output above its legend strip (centred if narrower)."""
    picture = np.asarray(Image.open(path))
    h, w = shape
    x0 = (picture.shape[1] - w) // 2
    return picture[:h, x0 : x0 + w]


def _legend(page) -> dict[str, int]:
    rows = page.query_selector_all("#legend tr[data-class]")
    return {r.get_attribute("data-class"): int(r.get_attribute("data-pixels")) for r in rows}


def test_app_in_browser(server, browser, tmp_path: Path) -> None:
    from fcnseg.data.street import render_street

    photo = tmp_path / "street.png"
    Image.fromarray(render_street(2, 360, 480)).save(photo)
    out = tmp_path / "predict"
    args = ["predict", "--checkpoint", server["ckpt"], "--input", str(photo), "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    expected = np.asarray(Image.open(out / "street_label.png"))

    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server["url"])
    page.set_input_files("#input-image input[type=file]", str(photo))
    page.wait_for_selector("#legend tr[data-class]", timeout=90_000)
    page.wait_for_selector("#labels-file a[href]", timeout=30_000)

    # Legend: every class with its pixel count, which are fcnseg predict's.
    counts = np.bincount(expected.ravel(), minlength=256)
    import fcnseg

    seg = fcnseg.load(server["ckpt"], device="cpu")
    assert _legend(page) == {name: int(counts[i]) for i, name in enumerate(seg.classes)}
    assert (counts > 0).sum() >= 2  # a comparison between real label maps, not constant ones
    # The class ids offered for download are fcnseg predict's, pixel for pixel.
    href = page.get_attribute("#labels-file a[href]", "href")
    np.testing.assert_array_equal(_png(page, href), expected)
    # The overlay shown is predict's overlay, at the photo's size; the label map its colours
    # (predict's pictures carry a legend strip below them; the page has its own legend).
    overlay_src = page.get_attribute("#overlay img", "src")
    np.testing.assert_array_equal(
        _png(page, overlay_src), _above_legend(out / "street_overlay.png", expected.shape)
    )
    np.testing.assert_array_equal(
        _png(page, page.get_attribute("#labelmap img", "src")),
        _above_legend(out / "street_predict.png", expected.shape),
    )
    status = page.inner_text("#status")
    assert "street.png" in status and "480×360" in status and " s on cpu" in status
    page.screenshot(path=tmp_path / "app.png", full_page=True)
    if os.environ.get("FCNSEG_APP_SCREENSHOT"):  # the README's picture: docs/app.jpg
        # JPEG at quality 90 without chroma subsampling: a third of the PNG's size (the drawn
        # photo's grain does not compress losslessly), colours and text still crisp.
        shot = Image.open(tmp_path / "app.png").convert("RGB")
        shot.save(os.environ["FCNSEG_APP_SCREENSHOT"], quality=90, subsampling=0, optimize=True)

    # Opacity 1: the overlay becomes the colour label map itself, without segmenting again.
    page.fill("#opacity input[type=number]", "1")
    page.press("#opacity input[type=number]", "Enter")
    page.wait_for_function(
        "src => document.querySelector('#overlay img').src !== src", arg=overlay_src
    )
    np.testing.assert_array_equal(
        _png(page, page.get_attribute("#overlay img", "src")),
        _above_legend(out / "street_predict.png", expected.shape),
    )

    # A file that is not an image: one clear line on the page, no stack trace, no old result.
    fake = tmp_path / "holiday.png"
    fake.write_text("these are not pixels")
    page.set_input_files("#input-image input[type=file]", str(fake))
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('Could not segment')",
        timeout=30_000,
    )
    status = page.inner_text("#status")
    assert "holiday.png" in status and "Traceback" not in page.content()
    assert str(tmp_path) not in status and "gradio" not in status  # no server paths
    assert page.query_selector("#legend tr[data-class]") is None

    # An example, one click away.
    page.click("#examples .gallery-item >> nth=0")
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('street_')", timeout=60_000
    )
    assert len(_legend(page)) == len(seg.classes)

    external = [u for u in requests if not u.startswith((server["url"], "data:", "blob:"))]
    assert external == []
    assert not server["net_log"].exists(), server["net_log"].read_text()
    assert "Traceback" not in server["log"].read_text()
    page.close()


def test_a_phone_photo_gets_a_sensible_overlay(server, browser, tmp_path: Path) -> None:
    """A 12-megapixel phone photo (4000x3000, JPEG stored sideways with an EXIF orientation
    tag) runs at the model's working scale: its labels agree with those of the same scene at the
    size the model was trained at, and the page shows them at the photo's own size."""
    import fcnseg
    from fcnseg.data.street import render_street

    seg = fcnseg.load(server["ckpt"], device="cpu")
    if seg.working_size is None:
        pytest.skip("the app serves a checkpoint without a working size (no built-in model)")
    scene = Image.fromarray(render_street(2, 360, 480))
    photo = tmp_path / "IMG_0001.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to see it upright
    big = scene.resize((4000, 3000), Image.Resampling.BICUBIC)
    big.transpose(Image.Transpose.ROTATE_90).save(photo, quality=90, exif=exif.tobytes())
    native = seg.predict(np.asarray(scene))  # the scene at the training images' size

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server["url"])
    page.set_input_files("#input-image input[type=file]", str(photo))
    page.wait_for_selector("#labels-file a[href]", timeout=120_000)
    status = page.inner_text("#status")
    assert "IMG_0001.jpg" in status and "4000×3000" in status, status
    labels = _png(page, page.get_attribute("#labels-file a[href]", "href"))
    assert labels.shape == (3000, 4000)  # upright, at the photo's size
    rows = (np.arange(3000) * 360 // 3000)[:, None]
    cols = (np.arange(4000) * 480 // 4000)[None, :]
    agree = (labels == native[rows, cols]).mean()
    assert agree > 0.9, agree  # before the working scale: sky labelled road and car
    overlay = _png(page, page.get_attribute("#overlay img", "src"))
    assert overlay.shape[:2] == (1536, 2048)  # shown scaled down; the download is full size
    assert len([n for n, c in _legend(page).items() if c]) >= 3
    page.close()


def test_large_upload_is_tiled_as_predict_does(tmp_path: Path, monkeypatch) -> None:
    from fcnseg import app

    ckpt = random_checkpoint(tmp_path / "random.pt")
    photo = tmp_path / "wide.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 1100, 3), dtype=np.uint8)).save(photo)
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(ckpt),
                "--input",
                str(photo),
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    monkeypatch.setattr(app, "DISPLAY_MAX_SIDE", 550)  # pictures on the page are scaled down
    (tmp_path / "dl").mkdir()
    models = app.Models([str(ckpt)], InferenceConfig(device="cpu"))
    handlers = app.Handlers(models, app._Recent(tmp_path / "dl"))
    upload = {"path": str(photo), "orig_name": "wide.png"}
    overlay, colour, legend, status, label_file, state = handlers.segment(
        upload, str(ckpt), "off (fastest)", 0.5
    )
    assert overlay.shape == colour.shape == (20, 550, 3)
    expected = np.asarray(Image.open(tmp_path / "p" / "wide_label.png"))  # 1100 > tile 1024
    np.testing.assert_array_equal(np.asarray(Image.open(label_file)), expected)
    assert Path(label_file).name == "wide_label.png" and "1100×40" in status


def test_legend_html_lists_every_class_by_share() -> None:
    from fcnseg.data.info import DatasetInfo

    info = DatasetInfo.from_dict(
        {"classes": ["sky", "road", "car"], "palette": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
    )
    labels = np.array([0] * 5 + [1] * 90, dtype=np.uint8).reshape(5, 19)
    html = legend_html(info, labels)
    assert (
        html.index('data-class="road"')
        < html.index('data-class="sky"')
        < html.index('data-class="car"')
    )
    assert 'data-pixels="90"' in html and "94.7%" in html and "rgb(4, 5, 6)" in html
    assert 'class="absent" data-class="car" data-pixels="0"' in html
    assert "void" not in html  # a prediction has no void pixels: no row for it
    with_void = legend_html(info, np.where(labels == 0, info.ignore_index, labels))
    assert (
        'data-class="void (ignored)" data-pixels="5"' in with_void
    )  # the same legend model as pictures


def test_app_without_model_is_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)  # as if none were shipped
    assert main(["app"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "fcnseg app: error: no built-in model is shipped with this fcnseg; give --checkpoint "
        "CKPT (a checkpoint written by fcnseg train)\n"
    )


def test_app_refuses_busy_port_and_bad_checkpoint(tmp_path: Path, capsys) -> None:
    ckpt = random_checkpoint(tmp_path / "model.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["app", "--checkpoint", str(ckpt), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert main(["app", "--checkpoint", str(missing), "--port", str(free_port())]) == 2
    assert capsys.readouterr().err == f"fcnseg app: error: {missing}: checkpoint not found\n"


def test_examples_are_drawn_or_taken_from_a_folder(tmp_path: Path) -> None:
    from fcnseg.app import example_images
    from fcnseg.errors import FcnsegError

    drawn = example_images(None, tmp_path)
    assert [p.name for p in drawn] == ["street_1.png", "street_4.png"]
    assert all(np.asarray(Image.open(p)).shape == (360, 480, 3) for p in drawn)
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.new("RGB", (8, 6)).save(mine / "a.jpg")
    (mine / "notes.txt").write_text("not an example")
    assert example_images(mine, tmp_path) == [mine / "a.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FcnsegError, match="no images in it"):
        example_images(tmp_path / "empty", tmp_path)
    with pytest.raises(FcnsegError, match="folder not found"):
        example_images(tmp_path / "nope", tmp_path)
