"""fcnseg train: run folder, freeze modes, losses, cache, resume, NaN handling, staged training."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import train_args

from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint
from fcnseg.cli import main
from fcnseg.engine import NonFiniteLossError, train_one_epoch
from fcnseg.errors import FcnsegError
from fcnseg.models import build_model, list_models
from fcnseg.training import config_from
from fcnseg.training.diagnostics import CollapseWatch
from fcnseg.training.losses import LOSSES
from fcnseg.training.setup import init_from, param_groups


def resolve_config(flags: dict, config_file: str | None):
    return config_from(config_file, **flags)


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("freeze", ["none", "features", "backbone"])
def test_train_writes_the_whole_run_folder(tiny_data: Path, tmp_path: Path, freeze: str) -> None:
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--freeze", freeze)) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["freeze"] == freeze and cfg["seed"] == 0
    assert len(cfg["run_info"]["backbone_sha256"]) == 64 and "git_hash" in cfg["run_info"]
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(rows[0]) >= {
        "epoch",
        "train_loss",
        "pixel_acc",
        "mean_acc",
        "mean_iu",
        "fw_iu",
        "epoch_time_s",
    }
    for name in (
        "checkpoint_last.pt",
        "checkpoint_best.pt",
        "curves.png",
        "img/epoch_001.png",
        "img/epoch_002.png",
    ):
        assert (run / name).is_file(), name
    ckpt = load_checkpoint(run / "checkpoint_last.pt")
    assert ckpt["epoch"] == 2 and ckpt["arch"] == {
        "name": "fcn8s_vgg16",
        "num_classes": 4,
        "fc_channels": 32,
    }
    assert ckpt["dataset"]["class_names"] == ["background", "disk", "box", "bar"]
    assert ckpt["dataset"]["ignore_index"] == 255 and len(ckpt["dataset"]["palette"]) == 4
    model, info = model_from_checkpoint(ckpt)
    assert model(torch.rand(1, 3, 33, 35)).shape == (1, 4, 33, 35)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains(tiny_data: Path, tmp_path: Path, loss: str) -> None:
    run = tmp_path / "run"
    args = train_args(
        tiny_data, run, "--loss", loss, "--epochs", "1", "--class-weights", "median-freq"
    )
    assert main(args) == 0
    row = _rows(run)[0]
    assert 0 <= float(row["mean_iu"]) <= 1 and float(row["train_loss"]) == float(row["train_loss"])


def test_a_run_prints_the_class_weights_its_loss_uses(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    assert main(train_args(tiny_data, tmp_path / "plain", "--epochs", "1")) == 0
    assert "class weights" not in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "1", "--class-weights", "median-freq")) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("class weights:")]
    assert len(lines) == 1
    weights = dict(part.rsplit(" ", 1) for part in lines[0].split(": ", 1)[1].split(", "))
    assert list(weights) == ["background", "disk", "box", "bar"]
    # median frequency: the background, on every pixel of every image, weighs least
    assert float(weights["background"]) < 1 < max(float(w) for w in weights.values())
    assert (
        main(
            train_args(tiny_data, tmp_path / "own", "--epochs", "1", "--class-weights", "1,2,0.5,3")
        )
        == 0
    )
    assert "class weights: background 1, disk 2, box 0.5, bar 3" in capsys.readouterr().out


def test_average_from_averages_the_epochs_weights_and_resumes_the_average(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    """--average-from 2 of 3 epochs: the checkpoint holds the mean of the weights after epochs 2
    and 3, training itself is undisturbed, and a run resumed after epoch 2 ends the same."""
    # A constant rate: epochs 1-2 of a 2- and of a 3-epoch run are the same.
    flags = ("--lr-schedule", "constant", "--num-vis", "0")
    weights = {}
    for name, extra in {
        "two": ("--epochs", "2"),
        "three": ("--epochs", "3"),
        "averaged": ("--epochs", "3", "--average-from", "2"),
        "resumed": ("--epochs", "2", "--average-from", "2"),
    }.items():
        assert main(train_args(tiny_data, tmp_path / name, *flags, *extra)) == 0
        weights[name] = load_checkpoint(tmp_path / name / "checkpoint_last.pt")
    assert "weights averaged over epochs 2-3" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--epochs", "3"]) == 0
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint_last.pt")
    two, three, averaged = (weights[k] for k in ("two", "three", "averaged"))
    assert averaged["averaged_epochs"] == resumed["averaged_epochs"] == 2
    floats = [k for k, v in three["model"].items() if v.is_floating_point()]
    moved = 0
    for k in floats:
        torch.testing.assert_close(averaged["training_weights"][k], three["model"][k])
        mean = (two["model"][k] + three["model"][k]) / 2
        torch.testing.assert_close(averaged["model"][k], mean)
        torch.testing.assert_close(resumed["model"][k], averaged["model"][k])
        torch.testing.assert_close(resumed["training_weights"][k], three["model"][k])
        moved += not torch.equal(two["model"][k], three["model"][k])
    assert moved >= 6, "fc6/fc7 and the head learn in epoch 3: the average is no copy of either"
    # Validation ran on the average: epoch 2 (an average of one) validates as the plain run's
    # epoch 2, epoch 3 not as its epoch 3.
    plain, mean_run = _rows(tmp_path / "three"), _rows(tmp_path / "averaged")
    assert mean_run[1]["val_loss"] == plain[1]["val_loss"]
    assert mean_run[2]["val_loss"] != plain[2]["val_loss"]
    # The resume record stays in checkpoint_last.pt; checkpoint_best.pt is a plain model.
    assert "training_weights" not in load_checkpoint(tmp_path / "averaged" / "checkpoint_best.pt")


def test_existing_run_is_not_overwritten(tiny_data: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 0
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 2
    assert "--resume" in capsys.readouterr().err


def test_bad_data_stops_before_any_work(tiny_data: Path, tmp_path: Path, capsys) -> None:
    sorted((tiny_data / "train" / "masks").iterdir())[2].write_bytes(b"junk")
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "train_002.png: unreadable or truncated image" in err[0]
    assert not (run / "checkpoint_last.pt").exists()
    assert main([*train_args(tiny_data, tmp_path / "run2"), "--skip-bad"]) == 0
    assert "skipped 1 bad pair" in capsys.readouterr().out


def test_images_of_several_sizes_train_with_random_crops(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    from PIL import Image

    first = sorted((tiny_data / "train" / "images").iterdir())[0]
    mask = tiny_data / "train" / "masks" / f"{first.stem}.png"
    for path, resample in ((first, Image.BILINEAR), (mask, Image.NEAREST)):
        picture = Image.open(path)
        picture.resize((picture.width + 8, picture.height + 4), resample).save(path)
    assert main(train_args(tiny_data, tmp_path / "flip", "--augment", "flip")) == 2
    assert "training images differ in size" in capsys.readouterr().err
    for augment in ("full", "strong"):  # both crop to --crop-size (strong failed here before)
        run = tmp_path / augment
        args = train_args(
            tiny_data, run, "--augment", augment, "--crop-size", "24", "--epochs", "1"
        )
        assert main(args) == 0 and len(_rows(run)) == 1


@pytest.mark.parametrize("cache", ["auto", "off"])  # cached features; whole images
def test_pictures_come_from_the_validation_pass(
    tiny_data: Path, tmp_path: Path, monkeypatch, cache: str
) -> None:
    """The epoch pictures draw the labels the validation pass gave: no module runs a forward
    while they are drawn (a VGG16 recipe's 120 epochs would otherwise pay one per picture)."""
    from fcnseg.training.loop import Session

    forwards, drawn, real = [], [], Session.draw

    def draw(self, folder):
        hook = torch.nn.modules.module.register_module_forward_pre_hook(
            # Modules with weights: the transforms that load the picture's images are modules too.
            lambda module, args: forwards.extend(type(module).__name__ for _ in module.parameters())
        )
        try:
            real(self, folder)
        finally:
            hook.remove()
        drawn.append(int(self.progress.epoch))

    monkeypatch.setattr(Session, "draw", draw)
    run = tmp_path / "run"
    args = ("--freeze", "backbone", "--num-vis", "2", "--epochs", "2", "--feature-cache", cache)
    assert main(train_args(tiny_data, run, *args)) == 0
    assert drawn == [1, 2] and forwards == []
    assert (run / "img" / "epoch_002.png").is_file()
    labels = load_checkpoint(run / "checkpoint_last.pt")["picture_labels"]
    assert len(labels) == 2 and all(
        v.dtype == torch.uint8 and v.dim() == 2 for v in labels.values()
    )
    assert "picture_labels" not in load_checkpoint(run / "checkpoint_best.pt")


def test_resume_redraws_a_missing_picture_from_the_commit_record(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    """The picture's labels come back from checkpoint_last.pt; a checkpoint without them (an
    older fcnseg's) gives no picture and says so, rather than a forward of its own."""
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "1")) == 0
    picture = run / "img" / "epoch_001.png"
    first = picture.read_bytes()
    picture.unlink()
    assert main(["train", "--resume", str(run)]) == 0
    assert picture.read_bytes() == first
    ckpt = torch.load(run / "checkpoint_last.pt", weights_only=True)
    del ckpt["picture_labels"]
    torch.save(ckpt, run / "checkpoint_last.pt")
    picture.unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert (
        "no picture for epoch 1: its checkpoint holds no validation labels"
        in capsys.readouterr().out
    )
    assert not picture.exists() and (run / "curves.png").is_file()


def test_feature_cache_gives_the_same_metrics(tiny_data: Path, tmp_path: Path) -> None:
    common = ("--freeze", "backbone", "--augment", "none", "--lr-schedule", "constant")
    assert main(train_args(tiny_data, tmp_path / "a", *common, "--feature-cache", "auto")) == 0
    assert main(train_args(tiny_data, tmp_path / "b", *common, "--feature-cache", "off")) == 0
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    for ra, rb in zip(a, b, strict=True):
        assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-3
        assert abs(float(ra["mean_iu"]) - float(rb["mean_iu"])) < 0.01


def test_input_scale_reaches_the_model_the_cache_and_the_checkpoint(
    tiny_data: Path, tmp_path: Path
) -> None:
    common = ("--freeze", "backbone", "--augment", "none", "--lr-schedule", "constant")
    common += ("--input-scale", "1.5", "--epochs", "1")
    assert main(train_args(tiny_data, tmp_path / "a", *common, "--feature-cache", "auto")) == 0
    assert main(train_args(tiny_data, tmp_path / "b", *common, "--feature-cache", "off")) == 0
    (ra,), (rb,) = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-3
    assert abs(float(ra["mean_iu"]) - float(rb["mean_iu"])) < 0.01
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint_last.pt")
    assert ckpt["arch"]["input_scale"] == 1.5
    model, _ = model_from_checkpoint(ckpt)
    assert model.input_scale == 1.5
    plain = load_checkpoint(tmp_path / "a" / "checkpoint_last.pt")
    del plain["arch"]["input_scale"]
    plain_model, _ = model_from_checkpoint(plain)
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():  # the scale changes what the trained weights see
        assert not torch.allclose(model.eval()(x), plain_model.eval()(x))
    for bad in (0, -2.0, 10.0, True):
        with pytest.raises(FcnsegError, match="input.scale"):
            resolve_config({"data": "d", "out": "o", "input_scale": bad}, None)


def test_frozen_means_no_grad_eval_mode_and_no_optimizer_state() -> None:
    model = build_model("fcn8s_vgg16", num_classes=3, fc_channels=16)
    model.freeze("features")
    model.train()
    trunk = list(model.backbone.parameters())
    assert all(not p.requires_grad for p in trunk)
    assert not model.backbone.training and model.neck.training and model.training
    optimizer = torch.optim.SGD(param_groups(model, 0.1, 1.0), lr=0.1, momentum=0.9)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in trunk}
    before = [p.detach().clone() for p in trunk]
    torch.nn.init.normal_(model.score_fr.weight, std=0.1)
    loss = F.cross_entropy(model(torch.rand(2, 3, 32, 32)), torch.randint(0, 3, (2, 32, 32)))
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in trunk)
    assert all(torch.equal(a, p) for a, p in zip(before, trunk, strict=True))
    assert len(optimizer.state) > 0 and not set(map(id, optimizer.state)) & {id(p) for p in trunk}


def test_norm_eval_keeps_pretrained_batchnorm_statistics() -> None:
    model = build_model("fcn8s_resnet50", num_classes=3, weights_backbone="none")
    model.freeze("none")
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in bns]
    x = torch.rand(2, 3, 64, 64) * 5
    model.freeze("none", norm_eval=True)
    model.train()
    assert model.backbone.training and not any(m.training for m in bns)
    model(x).sum().backward()
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns, strict=True))
    assert all(m.weight.grad is not None for m in bns)  # the affine part still learns
    model.freeze("none")
    model.train()
    model(x)
    assert not all(torch.equal(b, m.running_mean) for b, m in zip(before, bns, strict=True))


def test_scale_range_reaches_the_transform(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("--augment", "full", "--crop-size", "32", "--scale-range", "0.8", "1.2")
    assert main(train_args(tiny_data, run, *args, "--norm-eval", "--rare-crops", "0.5")) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["scale_range"] == [0.8, 1.2] and cfg["norm_eval"] is True
    assert cfg["rare_crops"] == 0.5
    with pytest.raises(FcnsegError, match="rare-crops needs crops"):
        resolve_config({"data": "d", "out": "o", "rare_crops": 0.5, "augment": "flip"}, None)
    with pytest.raises(FcnsegError, match="scale-range"):
        resolve_config({"data": "d", "out": "o", "scale_range": [2.0, 1.0]}, None)


def test_unfreeze_at_fine_tunes_the_trunk(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--freeze", "backbone", "--unfreeze-at", "2")) == 0
    ckpt = load_checkpoint(run / "checkpoint_last.pt")
    assert [g["name"] for g in ckpt["optimizer"]["param_groups"]] == ["head", "backbone"]
    first = yaml.safe_load((run / "config.yaml").read_text())
    assert first["unfreeze_at"] == 2


def test_init_from_copies_matching_layers(tiny_data: Path, tmp_path: Path, capsys) -> None:
    run32 = tmp_path / "fcn32s"
    assert main(train_args(tiny_data, run32, "--model", "fcn32s_vgg16", "--epochs", "1")) == 0
    run16 = tmp_path / "fcn16s"
    ckpt32 = run32 / "checkpoint_last.pt"
    args = train_args(
        tiny_data,
        run16,
        "--model",
        "fcn16s_vgg16",
        "--epochs",
        "1",
        "--init-from",
        str(ckpt32),
        "--lr",
        "0",
    )
    assert main(args) == 0
    assert "initialised" in capsys.readouterr().out
    s32 = load_checkpoint(ckpt32)["model"]
    s16 = load_checkpoint(run16 / "checkpoint_last.pt")["model"]
    torch.testing.assert_close(s16["score_fr.weight"], s32["score_fr.weight"])
    torch.testing.assert_close(s16["backbone.body.0.weight"], s32["backbone.body.0.weight"])
    missing = train_args(tiny_data, tmp_path / "x", "--init-from", str(tmp_path / "nope.pt"))
    assert main(missing) == 2
    assert "--init-from" in capsys.readouterr().err
    other = build_model("fcn8s_efficientnet_lite0", num_classes=3, weights_backbone="none")
    with pytest.raises(FcnsegError, match="no tensor matches fcn8s_efficientnet_lite0"):
        init_from(other, str(ckpt32))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_data, tmp_path, monkeypatch, capsys
) -> None:
    import fcnseg.training.setup as training

    real = training.build_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        fn = real(*args, **kwargs)

        def loss(x, y):
            calls["n"] += 1
            out = fn(x, y)
            return out * float("nan") if calls["n"] > 2 else out

        return loss

    monkeypatch.setattr(training, "build_loss", poisoned)
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--epochs", "3")) == 2
    assert "loss became nan" in capsys.readouterr().err
    assert load_checkpoint(run / "checkpoint_last.pt")["epoch"] == 1


def test_engine_refuses_nan_before_updating() -> None:
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=1.0)
    with pytest.raises(NonFiniteLossError):
        train_one_epoch(
            lambda b: (w * b, b), [torch.ones(1)], opt, lambda x, y: (x * float("inf")).sum()
        )
    assert w.item() == 1.0


def test_collapse_watch() -> None:
    watch = CollapseWatch(("a", "b", "c"), patience=2)
    collapsed = torch.tensor([[5, 0, 0], [3, 0, 0], [2, 0, 0]]).numpy()
    assert any("predictions use only 1 class" in m for m in watch.check(collapsed))
    assert any("never predicted for 2 epochs: b, c" in m for m in watch.check(collapsed))
    healthy = torch.tensor([[5, 1, 0], [0, 3, 0], [0, 1, 2]]).numpy()
    assert watch.check(healthy) == []


def _train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fcnseg",
        *train_args(data, run, "--epochs", "4", "--lr-schedule", "poly", *extra),
    ]


# A real SIGKILL, at a point that does not depend on the machine's speed: after the first step of
# epoch 3 (two epochs committed, the third one's weights half-updated). Polling metrics.csv for
# the moment to kill raced with fast CPUs and busy machines.
MID_EPOCH_KILL = """
import os, signal, sys
import fcnseg.training.loop as loop
calls, real = [0], loop.train_one_epoch
def train_one_epoch(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 3:
        report = kwargs["on_step"]
        def on_step(step, loss):
            report(step, loss)
            os.kill(os.getpid(), signal.SIGKILL)
        kwargs["on_step"] = on_step
    return real(*args, **kwargs)
loop.train_one_epoch = train_one_epoch
from fcnseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_kill_gives_identical_metrics(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(tiny_data, straight), check=True, capture_output=True, env=env)
    killed = tmp_path / "killed"
    argv = _train_cmd(tiny_data, killed)[3:]  # the arguments after "python -m fcnseg"
    proc = subprocess.run(
        [sys.executable, "-c", MID_EPOCH_KILL, *argv], capture_output=True, env=env
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-1500:]
    assert len(_rows(killed)) == 2, "killed in epoch 3, after two committed epochs"
    resumed = subprocess.run(
        [sys.executable, "-m", "fcnseg", "train", "--resume", str(killed)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    keys = ("epoch", "train_loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu", "lr")
    assert [{k: r[k] for k in keys} for r in _rows(killed)] == [
        {k: r[k] for k in keys} for r in _rows(straight)
    ]


def test_ddp_two_processes_on_cpu(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    argv = train_args(
        tiny_data,
        run,
        "--batch-size",
        "2",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp_spawn",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "fcnseg", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device cpu x2" in proc.stdout
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2]
    assert load_checkpoint(run / "checkpoint_last.pt")["epoch"] == 2


def test_seed_config_reproduces_the_classic_recipe_and_flags_win() -> None:
    cfg = resolve_config({"data": "d", "out": "o", "epochs": 3}, "seed")
    assert (cfg.freeze, cfg.batch_size, cfg.lr, cfg.momentum) == ("features", 20, 1e-4, 0.9)
    assert (cfg.weight_decay, cfg.loss, cfg.epochs) == (1e-5, "seed", 3)


CONFIGS = sorted(
    (Path(__file__).resolve().parents[1] / "src" / "fcnseg" / "configs").glob("*.yaml")
)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_resolves_by_path_and_by_name(path: Path) -> None:
    cfg = resolve_config({"data": "d", "out": "o"}, str(path))
    assert cfg.model in list_models()
    assert resolve_config({"data": "d", "out": "o"}, path.stem) == cfg


@pytest.mark.parametrize(
    "frozen_recipe, fine_recipe",
    [
        ("dataset1_lite0_frozen", "dataset1_lite0_finetune"),
        ("dataset1_best_frozen", "dataset1_best_finetune"),
        ("dataset1_best_frozen", "dataset1_rare_finetune"),
        ("dataset1_best_frozen", "dataset1_rare_finetune_scale2"),
    ],
)
def test_recipes_chain_frozen_then_fine_tune(
    tiny_data: Path, tmp_path: Path, monkeypatch, frozen_recipe: str, fine_recipe: str
) -> None:
    """Each pair of dataset1 recipes, shortened, on tiny data: the fine-tuning recipe starts from
    the frozen run's folder as it names it (runs/..., relative to the working directory), at the
    frozen run's input scale or, for the slower recipe, a larger one."""
    frozen_cfg = resolve_config({"data": "d", "out": "o"}, frozen_recipe)
    fine_cfg = resolve_config({"data": "d", "out": "o"}, fine_recipe)
    frozen = Path(fine_cfg.init_from).parent
    assert frozen.parent == Path("runs") and fine_cfg.model == frozen_cfg.model
    assert (fine_cfg.input_scale or 1.0) >= (frozen_cfg.input_scale or 1.0)
    monkeypatch.chdir(tmp_path)
    short = ["--epochs", "1", "--batch-size", "4", "--workers", "0", "--num-vis", "1"]
    common = ["--data", str(tiny_data), "--weights-backbone", "none", *short]
    assert main(["train", "--config", frozen_recipe, "--out", str(frozen), *common]) == 0
    fine = ["train", "--config", fine_recipe, "--out", "fine", "--crop-size", "32", *common]
    assert main(fine) == 0
    a = load_checkpoint(frozen / "checkpoint_last.pt")
    b = load_checkpoint(Path("fine") / "checkpoint_last.pt")
    same_net = {k: v for k, v in a["arch"].items() if k != "input_scale"}
    assert same_net == {k: v for k, v in b["arch"].items() if k != "input_scale"}
    assert a["arch"].get("input_scale", 1.0) == (frozen_cfg.input_scale or 1.0)
    bn = "backbone.body.bn1.running_mean"
    torch.testing.assert_close(a["model"][bn], b["model"][bn])  # norm_eval while fine-tuning
    stem = "backbone.body.conv_stem.weight"
    assert not torch.equal(a["model"][stem], b["model"][stem])  # ...and the backbone learned
    assert b["arch"].get("input_scale", 1.0) == (fine_cfg.input_scale or 1.0)
    model, _ = model_from_checkpoint(b)
    assert model(torch.rand(1, 3, 33, 35)).shape == (1, 4, 33, 35)


DATASET1 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dataset1"


@pytest.fixture
def small_dataset1(tmp_path: Path) -> Path:
    """A few dataset1 pairs at reduced size, in dataset1's own layout."""
    from PIL import Image

    if not DATASET1.is_dir():
        pytest.skip(f"dataset1 not found at {DATASET1}")
    root = tmp_path / "dataset1_small"
    for split, n in (("train", 6), ("test", 2)):
        for kind, resample in (("images", Image.BILINEAR), ("annotations", Image.NEAREST)):
            src = DATASET1 / f"{kind}_prepped_{split}"
            dst = root / f"{kind}_prepped_{split}"
            dst.mkdir(parents=True)
            for path in sorted(src.iterdir())[:n]:
                Image.open(path).resize((120, 90), resample).save(dst / path.name)
    return root


@pytest.mark.parametrize("freeze", ["none", "features", "backbone"])
def test_train_on_a_small_copy_of_dataset1(
    small_dataset1: Path, tmp_path: Path, freeze: str
) -> None:
    run = tmp_path / "run"
    assert main(train_args(small_dataset1, run, "--freeze", freeze, "--batch-size", "3")) == 0
    ckpt = load_checkpoint(run / "checkpoint_last.pt")
    assert ckpt["dataset"]["name"] == "dataset1" and ckpt["dataset"]["ignore_index"] == 11
    assert len(ckpt["dataset"]["class_names"]) == 11
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["run_info"]["dataset"]["val_split"]
        == "test"
    )
    assert (run / "img" / "epoch_002.png").is_file() and (run / "curves.png").is_file()
