"""The export caches trust only what they can check (issue 22: H2/H3, M1, M3, M9, stale files).

A one-convolution model stands in for the FCN (exporting VGG16 takes a minute on 2 cores): the
rules are about files, not networks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from fcnseg.inference import backends
from fcnseg.inference.backends import load_backend, onnx_cache_path
from fcnseg.inference.export_cache import STAMP_KEY, onnx_stamp, remove_stale_temporaries

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


class Tiny(nn.Module):
    """Images ``(N, 3, H, W)`` -> 3 class scores per pixel, from one 1x1 convolution."""

    num_classes = 3

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.randn(3, 3, 1, 1, generator=torch.Generator().manual_seed(seed))
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(image)


def loaded(seed: int, ckpt: Path) -> Tiny:
    """A model as :func:`fcnseg.checkpoint.model_from_checkpoint` hands it out: it remembers the
    digest of the bytes it was loaded from (here: a file of ``seed``'s bytes written to ``ckpt``)."""
    data = f"checkpoint {seed}".encode()
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(data)
    model = Tiny(seed).eval()
    model.checkpoint_sha256 = hashlib.sha256(data).hexdigest()
    return model


def agrees(runner: nn.Module, model: nn.Module) -> bool:
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return torch.allclose(runner(x), model(x), atol=1e-4)


def test_export_is_named_and_stamped_by_the_bytes_the_model_came_from(tmp_path: Path) -> None:
    """H2: the checkpoint is replaced while (or after) model A is loaded and exported: the export
    is filed under A's digest, so a later run of the new file B never uses it."""
    ckpt = tmp_path / "run" / "model.pt"
    model_a = loaded(1, ckpt)
    model_b = loaded(2, ckpt)  # the file now holds B; model_a still is A
    first = load_backend(model_a, "onnxruntime", checkpoint=ckpt)
    assert agrees(first, model_a)
    (path_a,) = ckpt.parent.glob("*.onnx")
    assert path_a == onnx_cache_path(ckpt, model_a.checkpoint_sha256)
    assert onnx_stamp(path_a)[0]["checkpoint_sha256"] == model_a.checkpoint_sha256
    second = load_backend(model_b, "onnxruntime", checkpoint=ckpt)
    assert agrees(second, model_b)  # before: A's export, found under the name B's bytes hash to


def test_a_file_copied_in_under_the_expected_name_is_not_used(tmp_path: Path, capsys) -> None:
    """H3: a foreign file (here another checkpoint's genuine export) under the expected name."""
    ckpt = tmp_path / "model.pt"
    model_a = loaded(1, ckpt)
    load_backend(model_a, "onnxruntime", checkpoint=ckpt)
    (path_a,) = tmp_path.glob("*.onnx")
    model_b = loaded(2, ckpt)
    path_b = onnx_cache_path(ckpt, model_b.checkpoint_sha256)
    shutil.copy(path_a, path_b)
    capsys.readouterr()
    runner = load_backend(model_b, "onnxruntime", checkpoint=ckpt)
    assert agrees(runner, model_b)
    err = capsys.readouterr().err
    assert "is not used (made from another checkpoint): exporting it again" in err
    assert onnx_stamp(path_b)[0]["checkpoint_sha256"] == model_b.checkpoint_sha256


def _external(path: Path) -> None:
    """Rewrite ``path`` so that its weights claim to live in a file outside its folder."""
    proto = onnx.load(str(path))
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../outside.bin"
    onnx.save(proto, str(path))


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "external", "unstamped"])
def test_a_damaged_cache_is_rebuilt_with_one_line(tmp_path: Path, capsys, damage: str) -> None:
    """M1: predict/evaluate/app all come through load_backend: no ONNX Runtime traceback."""
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    load_backend(model, "onnxruntime", checkpoint=ckpt)
    (path,) = tmp_path.glob("*.onnx")
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\x00not an onnx file" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "external":
        _external(path)
    else:
        proto = onnx.load(str(path))
        kept = [p for p in proto.metadata_props if p.key != STAMP_KEY]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        onnx.save(proto, str(path))
    capsys.readouterr()
    runner = load_backend(model, "onnxruntime", checkpoint=ckpt)
    assert agrees(runner, model)
    err = [line for line in capsys.readouterr().err.splitlines() if "is not used" in line]
    assert len(err) == 1 and str(path) in err[0], err
    assert onnx_stamp(path)[0] is not None  # rebuilt in place


def test_a_full_disk_falls_back_to_a_temporary_export(tmp_path: Path, monkeypatch, capsys) -> None:
    """M3: the promised fallback ran never, because the export turned OSError into FcnsegError."""
    import errno

    from fcnseg import files
    from fcnseg.inference import export

    def full(path, write):
        def no_space(tmp: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        if Path(path).parent == tmp_path:
            return files.atomic_write(path, no_space)
        return files.atomic_write(path, write)

    monkeypatch.setattr(export, "atomic_write", full)
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    runner = load_backend(model, "onnxruntime", checkpoint=ckpt)
    assert agrees(runner, model)
    assert "cannot cache the ONNX export" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*"))


def test_stale_temporaries_of_a_killed_export_are_removed_on_the_next_use(tmp_path: Path) -> None:
    """M9: what a kill during the export leaves; a fresh one (an export running now) stays, and
    so does every file not named like the cache's temporaries."""
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    old = time.time() - 2 * 3600
    stale = tmp_path / ".model.0123456789abcdef.onnx.89abcdef.tmp"
    stale_int8 = tmp_path / ".model.0123456789abcdef.int8.xml.01234567.tmp"
    fresh = tmp_path / ".model.fedcba9876543210.onnx.01234567.tmp"
    other = tmp_path / ".model.notes.tmp"
    for path in (stale, stale_int8, fresh, other):
        path.write_bytes(b"partial")
        if path is not fresh:
            os.utime(path, (old, old))
    load_backend(model, "onnxruntime", checkpoint=ckpt)
    assert not stale.exists() and not stale_int8.exists()
    assert fresh.exists() and other.exists()


def test_a_killed_int8_exports_folder_is_removed_but_not_one_holding_other_files(
    tmp_path: Path,
) -> None:
    """The int8 export writes into a temporary folder (m.xml, m.bin); a kill left it for good,
    as only files were removed. A folder holding anything else, or a link, is left alone."""
    old = time.time() - 2 * 3600
    killed = tmp_path / ".model.0123456789abcdef.int8.xml.01234567.tmp"
    mixed = tmp_path / ".model.0123456789abcdef.int8.xml.89abcdef.tmp"
    elsewhere = tmp_path / "elsewhere"
    link = tmp_path / ".model.0123456789abcdef.int8.xml.aaaabbbb.tmp"
    for folder in (killed, mixed, elsewhere):
        folder.mkdir()
        for part in ("m.xml", "m.bin"):
            (folder / part).write_bytes(b"partial")
    (mixed / "notes.txt").write_text("mine")
    link.symlink_to(elsewhere, target_is_directory=True)
    for path in (killed, mixed, link):
        os.utime(path, (old, old), follow_symlinks=False)
    removed = remove_stale_temporaries(tmp_path, "model")
    assert killed in removed and mixed not in removed and not killed.exists()
    assert sorted(p.name for p in mixed.iterdir()) == ["m.bin", "m.xml", "notes.txt"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["m.bin", "m.xml"]  # a link: not followed


def test_older_exports_of_the_same_checkpoint_are_removed_nothing_else(tmp_path: Path) -> None:
    """Low: a new checkpoint version replaces its old export (~14 MB each); a user's own ONNX file
    with a cache-like name, or another checkpoint's export, is kept."""
    ckpt = tmp_path / "model.pt"
    load_backend(loaded(1, ckpt), "onnxruntime", checkpoint=ckpt)
    (old,) = tmp_path.glob("*.onnx")
    other_ckpt = tmp_path / "sub" / "model.pt"
    load_backend(loaded(3, other_ckpt), "onnxruntime", checkpoint=other_ckpt)
    (other,) = other_ckpt.parent.glob("*.onnx")
    moved = tmp_path / other.name  # another checkpoint's export, beside this one
    shutil.move(other, moved)
    users = tmp_path / "model.0000000000000000.onnx"
    users.write_bytes(b"a user's file")
    load_backend(loaded(2, ckpt), "onnxruntime", checkpoint=ckpt)
    names = {p.name for p in tmp_path.glob("*.onnx")}
    assert old.name not in names
    assert {moved.name, users.name} <= names and len(names) == 3


def test_checkpoints_are_loaded_from_the_bytes_they_are_hashed_from(tmp_path: Path) -> None:
    from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from fcnseg.data.info import DatasetInfo
    from fcnseg.models import build_model

    info = DatasetInfo("two", ("a", "b"), ((0, 0, 0), (255, 255, 255)))
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("fcn32s_vgg16", num_classes=2, fc_channels=4), info)
    ckpt = load_checkpoint(path)
    assert ckpt["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    model, _ = model_from_checkpoint(ckpt, path)
    assert model.checkpoint_sha256 == ckpt["sha256"] and model.training_data is None


def test_auto_skips_exported_backends_that_are_not_installed(tmp_path: Path, monkeypatch) -> None:
    ckpt = tmp_path / "model.pt"
    loaded(1, ckpt)
    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    assert backends.resolve_backend("auto", "fp32", cpu, ckpt) == "onnxruntime"
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    assert backends.resolve_backend("auto", "fp32", cpu, ckpt) == "torch"


def test_a_user_copy_of_an_export_is_kept_when_the_checkpoint_changes(tmp_path: Path) -> None:
    """A copy the user made of the cache under their own name carries the same stamp; only the
    names fcnseg gives its caches (STEM.<16 hex>.onnx) are removed (a hostile pass: deleted)."""
    ckpt = tmp_path / "model.pt"
    load_backend(loaded(1, ckpt), "onnxruntime", checkpoint=ckpt)
    (cache,) = tmp_path.glob("*.onnx")
    mine = tmp_path / "model.deploy.onnx"
    shutil.copy(cache, mine)
    load_backend(loaded(2, ckpt), "onnxruntime", checkpoint=ckpt)
    assert mine.is_file() and not cache.exists()


@pytest.mark.parametrize("target", ["victim", "checkpoint"])
def test_a_link_under_the_cache_name_is_never_written_through(
    tmp_path: Path, capsys, target
) -> None:
    """A symlink planted under the expected cache name (to any file, or to the checkpoint
    itself) is neither used nor written through: the export goes to a temporary copy (a hostile
    pass turned a text file, and the checkpoint, into ONNX bytes this way)."""
    ckpt = tmp_path / "model.pt"
    model = loaded(1, ckpt)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    path = onnx_cache_path(ckpt, model.checkpoint_sha256)
    path.symlink_to(victim if target == "victim" else ckpt)
    before = (victim.read_bytes(), ckpt.read_bytes())
    runner = load_backend(model, "onnxruntime", checkpoint=ckpt)
    assert agrees(runner, model)
    assert (victim.read_bytes(), ckpt.read_bytes()) == before and path.is_symlink()
    assert "is a link or not a regular file: not used, nor replaced" in capsys.readouterr().err
