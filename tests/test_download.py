"""``fcnseg download``: against a small zip served on 127.0.0.1 (never the outside network)."""

from __future__ import annotations

import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import main
from fcnseg.data import download as dl
from fcnseg.data import open_dataset


class Handler(BaseHTTPRequestHandler):
    """Serves ``payload`` with Range support; ``cut_at`` closes the connection early."""

    payload = b""
    cut_at: int | None = None
    supports_ranges = True
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        rng = rng if self.supports_ranges else None
        start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        if start >= len(self.payload):
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}"
            )
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        end = len(self.payload) if self.cut_at is None else self.cut_at
        self.wfile.write(self.payload[start:end])
        self.close_connection = True

    def log_message(self, *args) -> None:  # quiet
        pass


def _fake_dataset1() -> tuple[bytes, str]:
    """A zip shaped like dataset1's (a top folder, four subfolders, two pairs per split), and its
    content digest."""
    rng = np.random.default_rng(0)
    buf, files = io.BytesIO(), {}
    for split in ("train", "test"):
        for i in range(2):
            for folder, array in (
                (f"images_prepped_{split}", rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)),
                (f"annotations_prepped_{split}", rng.integers(0, 12, (8, 12), dtype=np.uint8)),
            ):
                png = io.BytesIO()
                Image.fromarray(array).save(png, format="PNG")
                files[f"dataset1/{folder}/{split}_{i}.png"] = png.getvalue()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    lines = sorted(
        f"{n.split('/', 1)[1]} {dl.hashlib.sha256(d).hexdigest()}\n" for n, d in files.items()
    )
    return buf.getvalue(), dl.hashlib.sha256("".join(lines).encode()).hexdigest()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Handler]]:
    payload, digest = _fake_dataset1()
    handler = type("H", (Handler,), {"payload": payload, "cut_at": None, "ranges": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/dataset1.zip"
    source = dl.Source("dataset1", url, dl.DATASET1_FOLDERS, content_sha256=digest, files=8)
    monkeypatch.setitem(dl.SOURCES, "dataset1", source)
    yield handler
    httpd.shutdown()
    httpd.server_close()


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcnseg")]
    assert len(lines) == 1, lines
    return lines[0]


def test_download_checks_and_extracts_into_the_dataset1_layout(
    server, tmp_path: Path, capsys
) -> None:
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0
    layout = open_dataset(tmp_path / "dataset1")
    assert layout.kind == "dataset1" and len(layout.split("train")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset1", "dataset1.zip"]
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0  # a second run: nothing to do
    assert "already there" in capsys.readouterr().out
    assert server.ranges == [None]


def test_a_truncated_download_resumes_where_it_stopped(server, tmp_path: Path, capsys) -> None:
    server.cut_at = len(server.payload) // 2
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert f"interrupted at {server.cut_at:,} of {len(server.payload):,} bytes" in line
    assert "run the same command again to resume" in line
    assert [p.name for p in tmp_path.iterdir()] == ["dataset1.zip.part"]
    server.cut_at = None
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0
    assert server.ranges == [None, f"bytes={len(server.payload) // 2}-"]
    assert (tmp_path / "dataset1.zip").read_bytes() == server.payload
    assert open_dataset(tmp_path / "dataset1").kind == "dataset1"


def test_a_wrong_checksum_stops_and_leaves_nothing(server, tmp_path: Path, capsys) -> None:
    assert main(["download", "dataset1", "--to", str(tmp_path), "--sha256", "0" * 64]) == 2
    line = _error_line(capsys)
    assert "sha256" in line and "is not the expected 0000" in line and "removed" in line
    assert list(tmp_path.iterdir()) == []


def test_files_unlike_dataset1_are_not_extracted(server, tmp_path: Path, capsys) -> None:
    dl.SOURCES["dataset1"] = replace(dl.SOURCES["dataset1"], content_sha256="1" * 64)
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    assert "differ from the dataset1 fcnseg knows" in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset1.zip"]  # no dataset, no staging


def test_offline_says_where_to_put_the_zip_by_hand(tmp_path: Path, capsys) -> None:
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    to = tmp_path / "data"
    url = f"http://127.0.0.1:{port}/dataset1.zip"
    assert main(["download", "dataset1", "--to", str(to), "--url", url]) == 2
    line = _error_line(capsys)
    assert f"cannot download {url}" in line and f"put it at {to / 'dataset1.zip'}" in line
    assert f"unzip dataset1.zip -d {to}" in line
    assert not to.exists()


def test_a_zip_put_there_by_hand_is_used_offline(server, tmp_path: Path) -> None:
    (tmp_path / "dataset1.zip").write_bytes(server.payload)
    dl.SOURCES["dataset1"] = replace(dl.SOURCES["dataset1"], url="http://127.0.0.1:9/none.zip")
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0
    assert server.ranges == [] and open_dataset(tmp_path / "dataset1").kind == "dataset1"


def test_a_zip_reaching_outside_its_folder_is_refused(server, tmp_path: Path, capsys) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    (tmp_path / "dataset1.zip").write_bytes(buf.getvalue())
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    assert "refusing a member outside the folder: ../evil.txt" in _error_line(capsys)
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path / "dataset1").exists()


def test_a_server_ignoring_ranges_is_downloaded_again_from_the_start(
    server, tmp_path: Path
) -> None:
    server.cut_at, server.supports_ranges = 100, False
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    server.cut_at = None
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0
    assert server.ranges == [None, "bytes=100-"]  # asked to resume, sent everything: restarted
    assert (tmp_path / "dataset1.zip").read_bytes() == server.payload


def test_a_folder_of_the_users_named_like_the_staging_one_is_left_alone(server, tmp_path: Path):
    """The extraction stages in a fresh folder of its own; a user's `.dataset1.extracting/` (or
    a link of that name) is never removed (a hostile pass: rmtree'd before the zip was refused)."""
    mine = tmp_path / ".dataset1.extracting"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 0
    assert (mine / "notes.txt").read_text() == "precious"
    assert open_dataset(tmp_path / "dataset1").kind == "dataset1"
    assert not list(tmp_path.glob(".dataset1.extracting.*"))  # its own staging: gone


def test_a_zip_claiming_gigabytes_is_refused_before_extracting(
    server, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(dl, "MAX_UNZIPPED", 1000)  # the fake dataset1 unzips to more than this
    (tmp_path / "dataset1.zip").write_bytes(server.payload)
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    assert "unzips to more than" in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset1.zip"]


def test_a_link_where_the_partial_download_goes_is_refused(server, tmp_path: Path, capsys):
    """A symlink planted at dataset1.zip.part: the download truncated (or appended to) the file
    it points to (a hostile pass); it is refused in one line and the file is unchanged."""
    victim = tmp_path / "userlog.txt"
    victim.write_text("USER DATA LINE\n")
    to = tmp_path / "dl"
    to.mkdir()
    (to / "dataset1.zip.part").symlink_to(victim)
    assert main(["download", "dataset1", "--to", str(to)]) == 2
    assert "a link or not a regular file where the partial download goes" in _error_line(capsys)
    assert victim.read_text() == "USER DATA LINE\n" and server.ranges == []


def test_a_part_file_from_before_is_kept_when_the_checksum_fails(server, tmp_path: Path, capsys):
    """Only a download this run started is removed on a wrong checksum; a .part that was there
    (an earlier run's, or a file of the user's by that name) is left as it is."""
    part = tmp_path / "dataset1.zip.part"
    part.write_bytes(server.payload[:100])
    dl.SOURCES["dataset1"] = replace(dl.SOURCES["dataset1"], sha256="0" * 64)
    assert main(["download", "dataset1", "--to", str(tmp_path)]) == 2
    assert "the file was left as it is" in _error_line(capsys)
    assert part.is_file()
