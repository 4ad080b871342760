"""The training core: one declaration per option, the schedule, validation, freezing, the run
folder's commit order (fault injection), locking, file permissions, short functions."""

from __future__ import annotations

import ast
import csv
import os
import re
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import filelock
import pytest
import torch
import yaml
from conftest import train_args

import fcnseg
from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli import build_parser, main
from fcnseg.errors import FcnsegError
from fcnseg.files import OutputError, atomic_write
from fcnseg.models import build_model
from fcnseg.models.registry import ModelOptionError
from fcnseg.training import TrainConfig, config_from
from fcnseg.training.config import ConfigError, read_yaml, resolve

SRC = Path(fcnseg.__file__).parent


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


PROGRESS = re.compile(r"^\s*$|\d+/\d+ \[")  # a progress bar's line, or what erases it


def _one_error_line(capsys, command: str) -> str:
    """The error, alone on its line, and nothing else but progress bars (erased on a terminal)."""
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    err = [line for line in lines if not PROGRESS.search(line)]
    assert len(err) == 1, err
    assert err[0].startswith(f"fcnseg {command}: error: "), err[0]
    return err[0]


# -- options ---------------------------------------------------------------------------------------


def test_every_option_has_one_flag_or_is_marked_yaml_only() -> None:
    dests = {a.dest: a for a in _train_parser()._actions}
    for f in TrainConfig.fields():
        if f.metadata["yaml_only"]:
            assert f.name not in dests, f"{f.name} is YAML-only but has a flag"
        else:
            assert f.name in dests, f"option {f.name} has no flag and is not marked yaml_only"
            assert dests[f.name].option_strings[0] == "--" + f.name.replace("_", "-")
    extra = set(dests) - {f.name for f in TrainConfig.fields()} - {"help", "config", "resume"}
    assert not extra, f"flags that are not declared options: {extra}"


def test_help_shows_the_declared_defaults() -> None:
    dests = {a.dest: a for a in _train_parser()._actions}
    for name, shown in (("epochs", "50"), ("lr", "0.01"), ("model", "fcn8s_vgg16"),
                        ("scale_range", "0.5 2.0"), ("norm_eval", "off")):  # fmt: skip
        assert f"(default {shown})" in dests[name].help, dests[name].help


def test_yaml_round_trip_and_strict_types(tmp_path: Path) -> None:
    cfg = resolve({"data": "d", "out": "o", "epochs": 7, "scale_range": [0.8, 1.25]})
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml(run_info={"x": 1}))
    assert resolve(read_yaml(path)) == cfg
    for bad, match in (
        ({"epochs": True}, "--epochs must be a whole number"),
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"lr": "fast"}, "--lr must be a number"),
        ({"norm_eval": "false"}, "--norm-eval must be true or false"),
        ({"momentum": 1.5}, "--momentum must be between 0 and 1"),
        ({"loss": "l2"}, "--loss must be one of"),
        ({"class_weights": "1,x"}, "--class-weights"),
        ({"epochz": 3}, "did you mean 'epochs'"),
        ({"unfreeze_at": 60}, "after the last epoch"),
    ):
        with pytest.raises(ConfigError, match=match):
            resolve({"data": "d", "out": "o", **bad})


def test_bad_yaml_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1,\nlr: 0.1\n")
    assert main(["train", "--config", str(path), "--data", "d", "--out", "o"]) == 2
    assert "not valid YAML at line" in _one_error_line(capsys, "train")


def test_model_option_on_the_wrong_model_is_one_line(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(ModelOptionError, match="--fc-channels does not apply to fcn8s_resnet50"):
        build_model("fcn8s_resnet50", num_classes=3, fc_channels=32)
    run = tmp_path / "run"
    argv = train_args(tiny_data, run, "--model", "fcn8s_resnet50")
    assert main(argv) == 2
    line = _one_error_line(capsys, "train")
    assert (
        "--fc-channels does not apply to fcn8s_resnet50 (its options: --head-channels, --input-scale)"
        in line
    )
    assert not run.exists()


# -- the loop --------------------------------------------------------------------------------------


@pytest.fixture
def odd_data(tmp_path: Path) -> Path:
    """9 train images (not a multiple of the batch of 4) and 5 validation images (odd)."""
    from fcnseg.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path / "odd", counts={"train": 9, "val": 5}, size=(40, 48), seed=5
    )


def test_poly_schedule_ends_at_zero(odd_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(train_args(odd_data, run, "--lr-schedule", "poly", "--freeze", "none")) == 0
    rows = _rows(run)
    assert float(rows[-1]["lr"]) <= 1e-6 * 0.001
    assert load_checkpoint(run / "checkpoint_last.pt")["schedule"]["steps"] == 2 * 2
    # The working scale inference resizes to: the training images' median long side.
    assert load_checkpoint(run / "checkpoint_last.pt")["working_size"] == 48
    # Trained from images in channels-last (faster on CPUs: benchmarks/bench_channels_last.py):
    # the saved 3x3 kernels keep that layout.
    state = load_checkpoint(run / "checkpoint_last.pt")["model"]
    kernels = [t for t in state.values() if t.ndim == 4 and t.shape[1] > 1 and t.shape[2] == 3]
    assert kernels and all(
        t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
        for t in kernels
    )


@pytest.mark.parametrize("freeze", ["backbone", "none"])  # from cached features; from images
def test_epoch_validation_equals_fcnseg_evaluate(
    tiny_data: Path, tmp_path: Path, freeze: str
) -> None:
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data import open_dataset
    from fcnseg.evaluation import evaluate_checkpoint

    torch.manual_seed(0)  # a head with random weights: predictions use several classes
    model = build_model("fcn8s_efficientnet_lite0", num_classes=4)
    for name, p in model.named_parameters():
        if name.startswith("score_") and name.endswith("score.weight"):
            torch.nn.init.normal_(p, std=0.5)
    start = tmp_path / "start.pt"
    save_checkpoint(start, model, open_dataset(tiny_data).info)
    run = tmp_path / "run"
    argv = train_args(tiny_data, run, "--model", "fcn8s_efficientnet_lite0", "--fc-channels", None,
                      "--freeze", freeze, "--init-from", str(start), "--lr", "0", "--epochs", "1")  # fmt: skip
    assert main(argv) == 0
    ckpt = load_checkpoint(run / "checkpoint_last.pt")
    assert sum(1 for c in torch.tensor(ckpt["confusion"]).sum(0) if c > 0) >= 3  # not trivial
    # torch, as training validates: the exported backends agree within a tolerance only
    # (tests/test_backends.py), and exporting would take most of this test's time.
    result = evaluate_checkpoint(
        run / "checkpoint_last.pt", tiny_data, "val", progress=False, backend="torch"
    )
    assert round(result.metrics["mean_iu"], 4) == round(float(_rows(run)[-1]["mean_iu"]), 4)
    assert result.confusion.tolist() == ckpt["confusion"]


def test_validation_does_not_depend_on_the_number_of_processes(
    odd_data: Path, tmp_path: Path
) -> None:
    """5 validation images on 2 processes: each image is counted once (no sampler padding)."""
    common = ("--epochs", "1", "--lr", "0", "--batch-size", "2", "--accelerator", "cpu")
    one = tmp_path / "one"
    assert main(train_args(odd_data, one, *common)) == 0
    two = tmp_path / "two"
    argv = train_args(odd_data, two, *common, "--devices", "2", "--strategy", "ddp_spawn")
    proc = subprocess.run(
        [sys.executable, "-m", "fcnseg", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device cpu x2" in proc.stdout
    cm1 = torch.tensor(load_checkpoint(one / "checkpoint_last.pt")["confusion"])
    cm2 = torch.tensor(load_checkpoint(two / "checkpoint_last.pt")["confusion"])
    assert int(cm2.sum()) == int(cm1.sum()) == 5 * 40 * 48 - _void_pixels(odd_data)
    # Same weights (lr 0), other batches per process: labels agree but for near-ties; a pixel
    # labelled otherwise moves one count between two cells. At most 0.1% of pixels may differ.
    moved = int((cm1 - cm2).abs().sum()) // 2
    assert moved <= 0.001 * int(cm1.sum()), moved


def _void_pixels(data: Path) -> int:
    import numpy as np
    from PIL import Image

    return sum(
        int((np.array(Image.open(p)) == 255).sum()) for p in (data / "val" / "masks").iterdir()
    )


def test_frozen_parts_stay_in_eval_mode_by_construction() -> None:
    from fcnseg.training.feature_cache import FeatureCache

    model = build_model("fcn8s_vgg16", num_classes=3, fc_channels=16)
    model.freeze("features")
    model.train()
    assert not model.backbone.training and model.neck.training and model.score_fr.training
    dataset = [(torch.rand(3, 32, 32), torch.zeros(32, 32, dtype=torch.long))]
    FeatureCache.build(model, "features", dataset, flips=False, device=torch.device("cpu"))
    assert model.training and not model.backbone.training  # build() restored train mode...
    model.freeze("none")
    assert model.backbone.training  # ...and unfreezing really unfreezes
    model.freeze("backbone")
    model.eval().train()
    assert not model.neck.training and not model.backbone.training


def test_early_stopping_and_resume_of_a_stopped_run(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--lr", "0", "--epochs", "6", "--patience", "2")) == 0
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2, 3]
    assert "early stop: validation mean IU has not improved for 2 epochs" in capsys.readouterr().out
    assert main(["train", "--resume", str(run)]) == 0
    assert len(_rows(run)) == 3


def test_tensorboard_logger_writes_events(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    run = tmp_path / "run"
    assert main([*train_args(tiny_data, run, "--epochs", "1"), "--tensorboard"]) == 0
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_python_api_train_mirrors_the_cli(tiny_data: Path, tmp_path: Path) -> None:
    options = dict(weights_backbone="none", fc_channels=32, epochs=1, batch_size=4, workers=0,
                   num_vis=0, optimizer="adamw", lr=0.001)  # fmt: skip
    result = fcnseg.train({"freeze": "backbone"}, data=tiny_data, out=tmp_path / "a", **options)
    assert result.epochs_done == 1 and result.run_dir == tmp_path / "a"
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["freeze"] == "backbone"
    again = fcnseg.train(resume=tmp_path / "a", epochs=2)
    assert again.epochs_done == 2 and len(again.history) == 2
    with pytest.raises(FcnsegError, match="already holds a run"):
        fcnseg.train(data=tiny_data, out=tmp_path / "a", **options)
    assert config_from("seed", data="d", out="o").loss == "seed"


# -- the run folder --------------------------------------------------------------------------------


def test_run_folder_files_are_0644_and_synced(tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert main(train_args(tiny_data, run, "--epochs", "1")) == 0
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) >= 6
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    events = []
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    atomic_write(tmp_path / "x.txt", lambda tmp: Path(tmp).write_text("x"))
    assert events[:2] == ["fsync", "replace"]


def test_a_full_disk_is_one_line(tiny_data: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import shutil

    def full(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
            "PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=0))
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "1")) == 2
    line = _one_error_line(capsys, "train")
    assert "checkpoint" in line and "no space left on the device" in line
    assert not list((tmp_path / "run").glob(".*.tmp"))
    with pytest.raises(OutputError, match="no space left"):
        atomic_write(tmp_path / "y.pt", lambda tmp: torch.save({}, tmp))


def test_a_second_process_cannot_train_into_a_locked_folder(tiny_data, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with filelock.FileLock(run / ".lock"):
        assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "another fcnseg process is training into this folder" in _one_error_line(capsys, "train")
    assert not (run / "config.yaml").exists()
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 0  # free again


def test_a_folder_with_other_files_is_refused(tiny_data: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "thesis"
    run.mkdir()
    (run / "chapter1.tex").write_text("precious")
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "folder is not empty (chapter1.tex)" in _one_error_line(capsys, "train")
    assert sorted(p.name for p in run.iterdir()) == ["chapter1.tex"]
    (tmp_path / "file").write_text("x")
    assert main(train_args(tiny_data, tmp_path / "file", "--epochs", "1")) == 2
    assert "is a file" in _one_error_line(capsys, "train")


KILLER = textwrap.dedent(
    """
    import os, sys
    kill_at, count, real = int(os.environ["KILL_AT"]), [0], os.replace
    def replace(src, dst):
        count[0] += 1
        if count[0] == kill_at:
            os._exit(137)  # as kill -9: no cleanup, the temporary file stays
        real(src, dst)
    os.replace = replace
    from fcnseg.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _state(run: Path) -> tuple:
    rows = [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in _rows(run)]
    last, best = (load_checkpoint(run / n) for n in ("checkpoint_last.pt", "checkpoint_best.pt"))
    return rows, last["model"], best["model"], best["epoch"], last["optimizer"]["state"]


def test_a_kill_at_every_step_of_the_bookkeeping_resumes_to_the_same_result(tiny_data, tmp_path):
    """Renames in order: config.yaml; epoch 1 (the best so far): pending best, checkpoint_last
    (the commit), best promoted, metrics.csv, picture, curves; then epoch 2's."""
    args = train_args(tiny_data, tmp_path / "x", "--epochs", "2", "--freeze", "none")[1:]
    # One thread in every process (the same sums as the uninterrupted run), two kills at a time.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}

    def train(run: Path, kill_at: int) -> int:
        argv = ["train", *[str(run) if a == str(tmp_path / "x") else a for a in args]]
        proc = subprocess.run([sys.executable, "-c", KILLER, *argv], env={**env, "KILL_AT": str(kill_at)},
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        return proc.returncode

    def kill_and_resume(kill_at: int) -> tuple[int, Path, int, subprocess.CompletedProcess]:
        run = tmp_path / f"kill{kill_at}"
        code = train(run, kill_at)
        resumed = subprocess.run([sys.executable, "-m", "fcnseg", "train", "--resume", str(run)],
                                 env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        return kill_at, run, code, resumed

    straight = tmp_path / "straight"
    assert train(straight, 0) == 0
    expected = _state(straight)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(kill_and_resume, (2, 3, 4, 5, 6, 9)))
    for kill_at, run, code, resumed in results:
        assert code == 137, kill_at
        assert resumed.returncode == 0, (kill_at, resumed.stderr[-1500:])
        got = _state(run)
        assert got[0] == expected[0], kill_at
        assert got[3] == expected[3], kill_at
        for a, b in ((got[1], expected[1]), (got[2], expected[2])):
            assert all(torch.equal(a[k], b[k]) for k in b), kill_at
        assert not list(run.rglob("*.tmp")) and not list(run.glob(".checkpoint_best.e*"))
        assert (run / "img" / "epoch_001.png").is_file() and (run / "curves.png").is_file()


def test_resume_after_a_kill_before_the_picture_keeps_batchnorm_statistics(tiny_data, tmp_path):
    """A model with BatchNorm, killed after epoch 1's commit and before its picture: the
    picture drawn on resume comes from the commit record (no forward that could move the
    BatchNorm statistics), so the run ends as an uninterrupted one does."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    lite = ("--model", "fcn8s_efficientnet_lite0", "--fc-channels", None, "--freeze", "none")

    def train(run: Path, kill_at: int, *argv: str) -> subprocess.CompletedProcess:
        args = argv or train_args(tiny_data, run, *lite)
        return subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True,
                              text=True, env={**env, "KILL_AT": str(kill_at)}, timeout=300)  # fmt: skip

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train(straight, 0).returncode == 0
    # Renames: config.yaml, pending best, checkpoint_last (the commit), best, metrics.csv, picture.
    assert train(killed, 6).returncode == 137
    assert not (killed / "img" / "epoch_001.png").exists()
    resumed = train(killed, 0, "train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    a, b = (load_checkpoint(r / "checkpoint_last.pt")["model"] for r in (straight, killed))
    assert any("running_mean" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


# -- the shape of the code -------------------------------------------------------------------------

# The layering of the whole package: tests/test_structure.py.


def test_training_functions_are_short() -> None:
    for path in (SRC / "training").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.name}:{node.name} is {length} lines"
