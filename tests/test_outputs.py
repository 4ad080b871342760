"""The output rule: no command writes over its own input, over a file it did not write, or over
anything but a regular file; each refusal is one line and exit 2, before any work."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import main
from fcnseg.files import OutputError, atomic_write, check_output_file, save_png, written_by_fcnseg

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def _error(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and err[0].startswith(f"fcnseg {command}: error: "), err
    return err[0]


def _picture(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _mask(path: Path, h: int = 24, w: int = 32) -> bytes:
    Image.fromarray(np.arange(h * w, dtype=np.uint8).reshape(h, w) % 4).save(path)
    return path.read_bytes()


def _predict(ckpt: Path, inputs: list[Path], out: Path, *extra: str) -> int:
    args = ["predict", "--checkpoint", str(ckpt), "--input", *map(str, inputs), "--out", str(out)]
    return main([*args, "--device", "cpu", "--backend", "torch", *extra])


# -- predict ---------------------------------------------------------------------------------------


def test_predict_into_its_input_folder_is_refused(
    lite0_checkpoint, tmp_path, capsys, monkeypatch
) -> None:
    """C1: street.png beside its real mask street_label.png; --out the same folder."""
    d = tmp_path / "photos"
    d.mkdir()
    _picture(d / "street.png")
    mask = _mask(d / "street_label.png")
    assert _predict(lite0_checkpoint, [d], d) == 2
    assert "is an input folder (--input)" in _error(capsys, "predict")
    assert (d / "street_label.png").read_bytes() == mask
    assert sorted(p.name for p in d.iterdir()) == ["street.png", "street_label.png"]
    # The same folder by another name (relative path, symlink) is the same folder.
    (tmp_path / "link").symlink_to(d)
    assert _predict(lite0_checkpoint, [d], tmp_path / "link") == 2
    assert "is an input folder" in _error(capsys, "predict")
    monkeypatch.chdir(tmp_path)
    assert _predict(lite0_checkpoint, [Path("photos")], d / ".." / "photos") == 2
    assert sorted(p.name for p in d.iterdir()) == ["street.png", "street_label.png"]


def test_predict_never_replaces_an_input_or_a_foreign_file(
    lite0_checkpoint, tmp_path, capsys
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    _picture(d / "street.png")
    mask = _mask(d / "street_label.png")
    # Files given one by one, --out their folder: street_label.png is an input (and a mask).
    assert _predict(lite0_checkpoint, [d / "street.png", d / "street_label.png"], d) == 2
    assert "would replace the input" in _error(capsys, "predict")
    # Given alone, it is still a file fcnseg did not write.
    assert _predict(lite0_checkpoint, [d / "street.png"], d) == 2
    assert "not written by fcnseg" in _error(capsys, "predict")
    # A hard link to the mask in another --out: the same file by another name.
    out = tmp_path / "out"
    out.mkdir()
    os.link(d / "street_label.png", out / "street_label.png")
    truth = tmp_path / "truth"
    truth.mkdir()
    os.link(d / "street_label.png", truth / "street.png")
    assert _predict(lite0_checkpoint, [d / "street.png"], out, "--truth", str(truth)) == 2
    assert "would replace the truth mask" in _error(capsys, "predict")
    assert (d / "street_label.png").read_bytes() == mask
    assert sorted(p.name for p in out.iterdir()) == ["street_label.png"]  # nothing else written


def test_predict_replaces_its_own_earlier_predictions(lite0_checkpoint, tmp_path) -> None:
    _picture(tmp_path / "a.png")
    (tmp_path / "truth").mkdir()
    _mask(tmp_path / "truth" / "a.png")
    out, truth = tmp_path / "out", ("--truth", str(tmp_path / "truth"))
    assert _predict(lite0_checkpoint, [tmp_path / "a.png"], out, *truth) == 0
    assert len(list(out.iterdir())) == 6 and all(written_by_fcnseg(p) for p in out.iterdir())
    assert _predict(lite0_checkpoint, [tmp_path / "a.png"], out, *truth) == 0  # a rerun


# -- export and evaluate ---------------------------------------------------------------------------


def test_export_and_evaluate_never_write_over_the_checkpoint(
    lite0_checkpoint, tiny_data, tmp_path, capsys
) -> None:
    """C2: the checkpoint as --out of export or --json of evaluate, by any name."""
    pytest.importorskip("onnx")
    ckpt = tmp_path / "k.pt"
    ckpt.write_bytes(lite0_checkpoint.read_bytes())
    before = ckpt.read_bytes()
    (tmp_path / "soft.pt").symlink_to(ckpt)
    os.link(ckpt, tmp_path / "hard.pt")
    for name in (ckpt, tmp_path / "soft.pt", tmp_path / "hard.pt", Path(os.path.relpath(ckpt))):
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(name)]) == 2
        assert "would replace the checkpoint (--checkpoint)" in _error(capsys, "export")
        evaluate = ["evaluate", "--checkpoint", str(ckpt), "--data", str(tiny_data)]
        assert main([*evaluate, "--json", str(name), "--out", str(tmp_path / "e")]) == 2
        assert "would replace the checkpoint (--checkpoint)" in _error(capsys, "evaluate")
    assert ckpt.read_bytes() == before and not (tmp_path / "e").exists()


def test_evaluate_replaces_only_its_own_json_and_pictures(
    lite0_checkpoint, tiny_data, tmp_path, capsys
):
    evaluate = ["evaluate", "--checkpoint", str(lite0_checkpoint), "--data", str(tiny_data)]
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}\n')
    assert main([*evaluate, "--json", str(notes), "--out", str(tmp_path / "e")]) == 2
    assert "not written by fcnseg" in _error(capsys, "evaluate")
    assert notes.read_text() == '{"my": "notes"}\n'
    pics = tmp_path / "pics"
    pics.mkdir()
    _picture(pics / "confusion_matrix.png")
    assert main([*evaluate, "--out", str(pics)]) == 2
    assert "not written by fcnseg" in _error(capsys, "evaluate")
    out, js = tmp_path / "e", tmp_path / "m.json"
    args = [
        *evaluate,
        "--out",
        str(out),
        "--json",
        str(js),
        "--device",
        "cpu",
        "--worst",
        "1",
        "--backend",
        "torch",
    ]
    assert main(args) == 0
    for path in [js, *out.iterdir()]:  # what a second run would replace: its own files
        assert written_by_fcnseg(path), path
        check_output_file(path)


# -- devices, FIFOs, symlinks ----------------------------------------------------------------------


@needs_fifo
def test_a_fifo_or_a_device_is_never_replaced(lite0_checkpoint, tiny_data, tmp_path, capsys):
    """C3: the atomic rename would put a regular file where the FIFO (or /dev/full) was."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="is a FIFO"):
        atomic_write(fifo, lambda tmp: Path(tmp).write_text("{}"))
    with pytest.raises(OutputError, match="is a FIFO"):
        check_output_file(fifo)
    evaluate = ["evaluate", "--checkpoint", str(lite0_checkpoint), "--data", str(tiny_data)]
    for target in (fifo, Path(os.devnull)):
        assert main([*evaluate, "--json", str(target), "--out", str(tmp_path / "e")]) == 2
        assert "not a regular file" in _error(capsys, "evaluate")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and not list(tmp_path.glob(".*.tmp"))
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_symlinked_output_is_written_through(tmp_path) -> None:
    """As ``>`` does: the link stays, its target gets the new content."""
    target = tmp_path / "real.png"
    save_png(np.zeros((2, 2), np.uint8), target)
    link = tmp_path / "link.png"
    link.symlink_to(target)
    check_output_file(link)  # the target is fcnseg's own
    save_png(np.ones((2, 2), np.uint8), link)
    assert link.is_symlink() and np.asarray(Image.open(target)).max() == 1


# -- train -----------------------------------------------------------------------------------------


def test_train_refuses_a_folder_with_a_hand_written_config(tiny_data, tmp_path, capsys) -> None:
    """C4: a run folder is new, empty or fcnseg's own; a config.yaml of one's own is not."""
    from conftest import train_args

    run = tmp_path / "R"
    run.mkdir()
    (run / "config.yaml").write_text("# my settings\nlr: 0.5\n")
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "not a config.yaml written by fcnseg" in _error(capsys, "train")
    assert main(["train", "--resume", str(run)]) == 2
    assert "not a config.yaml written by fcnseg" in _error(capsys, "train")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert (run / "config.yaml").read_text() == "# my settings\nlr: 0.5\n"
    # Other files of a run, without fcnseg's config.yaml, are not a run's either.
    (run / "config.yaml").unlink()
    (run / "metrics.csv").write_text("my,table\n")
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "folder is not empty (metrics.csv)" in _error(capsys, "train")


def test_train_never_replaces_its_own_config_file(tiny_data, tmp_path, capsys) -> None:
    """A run's config.yaml kept as a recipe in a fresh folder, and that folder as --out."""
    from conftest import train_args

    from fcnseg.training import TrainConfig

    run = tmp_path / "R"
    run.mkdir()
    text = TrainConfig().to_yaml(run_info={"fcnseg_version": "0"})
    (run / "config.yaml").write_text(text)
    argv = train_args(tiny_data, run, "--epochs", "1", "--config", str(run / "config.yaml"))
    assert main(argv) == 2
    assert "is the new run's config.yaml" in _error(capsys, "train")
    assert (run / "config.yaml").read_text() == text


@needs_fifo
def test_fifos_in_the_way_of_predict_and_train_are_refused_without_blocking(
    lite0_checkpoint, tiny_data, tmp_path, capsys
) -> None:
    """A FIFO is never opened to look inside (that would wait for a writer forever)."""
    from conftest import train_args

    _picture(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "a_label.png")
    assert _predict(lite0_checkpoint, [tmp_path / "a.png"], out) == 2
    assert "a_label.png: is a FIFO" in _error(capsys, "predict")
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "config.yaml")
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "not a config.yaml written by fcnseg" in _error(capsys, "train")
    assert stat.S_ISFIFO((out / "a_label.png").lstat().st_mode)
    assert stat.S_ISFIFO((run / "config.yaml").lstat().st_mode)


@needs_fifo
def test_a_fifo_in_the_truth_folder_is_named_as_such_not_missing(
    lite0_checkpoint, tmp_path, capsys
) -> None:
    """predict --truth: a FIFO named like an input is reported as not a regular file (and never
    opened); another input with a real mask still gets its triplet."""
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        _picture(tmp_path / "in" / f"{name}.png")
    truth = tmp_path / "truth"
    truth.mkdir()
    os.mkfifo(truth / "a.png")
    out = tmp_path / "out"
    inputs = [tmp_path / "in" / "a.png"]
    assert _predict(lite0_checkpoint, inputs, out, "--truth", str(truth)) == 2
    assert "a.png: named like the input a.png but not a regular file" in _error(capsys, "predict")
    _mask(truth / "b.png")
    inputs.append(tmp_path / "in" / "b.png")
    assert _predict(lite0_checkpoint, inputs, out, "--truth", str(truth)) == 0
    assert "truth/a.png: not a regular file; no triplet for" in capsys.readouterr().err
    assert (out / "b_triplet.png").is_file() and not (out / "a_triplet.png").exists()
    assert stat.S_ISFIFO((truth / "a.png").lstat().st_mode)


def test_evaluate_json_may_not_be_one_of_its_pictures(
    lite0_checkpoint, tiny_data, tmp_path, capsys
):
    evaluate = ["evaluate", "--checkpoint", str(lite0_checkpoint), "--data", str(tiny_data)]
    out = tmp_path / "e"
    twisted = out / "sub" / ".." / "per_class_iou.png"
    assert main([*evaluate, "--out", str(out), "--json", str(twisted)]) == 2
    assert "would replace a picture of --out" in _error(capsys, "evaluate")
    assert not out.exists()
