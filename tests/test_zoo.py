"""Built-in models: shipping a checkpoint, resolving names wherever a checkpoint is accepted,
the sha256 check, and (with dataset1) the shipped models' metrics as their manifests state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_args

from fcnseg import zoo
from fcnseg.checkpoint import model_from_checkpoint
from fcnseg.cli import main
from fcnseg.data.info import DatasetInfo
from fcnseg.errors import CheckpointError, FcnsegError
from fcnseg.zoo import load_checkpoint
from fcnseg.zoo.__main__ import main as zoo_main
from fcnseg.zoo.ship import evaluate_on_test, ship_model

# dataset1 beside the repository (../shared/datasets/dataset1), or where FCNSEG_DATASET1 says.
DATASET1 = Path(
    os.environ.get(
        "FCNSEG_DATASET1", Path(__file__).resolve().parents[2] / "shared/datasets/dataset1"
    )
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny synthetic dataset and a checkpoint trained on it for one epoch."""
    from fcnseg.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("zoo")
    data = make_synthetic_dataset(
        root / "data", counts={"train": 8, "val": 4, "test": 4}, size=(40, 48), seed=11
    )
    assert main(train_args(data, root / "run", "--epochs", "1")) == 0
    return data, root / "run" / "checkpoint_best.pt"


@pytest.fixture(scope="module")
def shipped(trained, tmp_path_factory: pytest.TempPathFactory) -> zoo.BuiltinModel:
    """The synthetic checkpoint shipped as ``synth_test`` into a zoo folder of its own."""
    data, ckpt = trained
    root = tmp_path_factory.mktemp("zoo_root")
    return ship_model(
        ckpt, "synth_test", data=data, recipe="tests/conftest.py train_args", root=root
    )


@pytest.fixture
def use_zoo(shipped, monkeypatch: pytest.MonkeyPatch) -> zoo.BuiltinModel:
    """Point the package's zoo folder at the test's, so its name works everywhere."""
    monkeypatch.setattr(zoo, "ZOO_DIR", shipped.file.parent)
    return shipped


def test_ship_writes_compact_file_and_manifest(trained, shipped) -> None:
    data, ckpt = trained
    man = shipped.manifest
    assert sorted(p.name for p in shipped.file.parent.iterdir()) == [
        "synth_test.json",
        "synth_test.pt",
    ]
    assert man["sha256"] == zoo.sha256_file(shipped.file)
    assert man["size_bytes"] == shipped.file.stat().st_size
    assert man["classes"] == ["background", "disk", "box", "bar"]
    original = torch.load(ckpt, weights_only=True)
    assert man["git_hash"] == original["run_info"]["git_hash"]
    assert man["command"] == original["run_info"]["command"]
    assert man["recipe"] == "tests/conftest.py train_args"
    assert man["metrics"]["num_images"] == 4 and 0 <= man["metrics"]["mean_iu"] <= 1
    assert man["metrics_tta"] is None
    raw = torch.load(shipped.file, weights_only=True)
    assert raw["storage"] == "fp16" and "optimizer" not in raw
    assert {v.dtype for v in raw["model"].values()} == {torch.float16}  # VGG: no buffers
    assert shipped.file.stat().st_size < 0.6 * ckpt.stat().st_size  # fp16, no optimizer state


def test_compact_state_halves_parameters_keeps_buffers() -> None:
    from fcnseg.models import build_model
    from fcnseg.zoo.ship import compact_state

    # Lite0, as the CamVid models: BatchNorm buffers include a running variance that fp16
    # would flush to zero below 6e-8.
    model = build_model("fcn8s_efficientnet_lite0", num_classes=3)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(1e-8)
    info = DatasetInfo("t", ("a", "b", "c"), ((0, 0, 0), (9, 9, 9), (99, 99, 99)))
    ckpt = {"arch": model.arch, "dataset": info.to_dict(), "model": model.state_dict()}
    state = compact_state(ckpt)
    params = {n for n, _ in model.named_parameters()}
    assert params and len(state) > len(params)
    for k, v in state.items():
        want = torch.float16 if k in params else ckpt["model"][k].dtype
        assert v.dtype == want, k
    assert any((v == 1e-8).all() for k, v in state.items() if k.endswith("running_var"))


def test_name_resolves_upcast_and_predicts_like_original(trained, use_zoo) -> None:
    _, ckpt = trained
    from fcnseg.inference import class_scores

    builtin = load_checkpoint("synth_test")
    assert all(v.dtype != torch.float16 for v in builtin["model"].values())
    a, _ = model_from_checkpoint(builtin)
    b, _ = model_from_checkpoint(load_checkpoint(ckpt))
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        la, lb = class_scores(a.eval(), x), class_scores(b.eval(), x)
    assert (la - lb).abs().max() < 0.05  # fp16 rounding of the weights only
    assert (la.argmax(1) == lb.argmax(1)).float().mean() > 0.99


def test_manifest_metrics_reproduce(trained, use_zoo) -> None:
    data, _ = trained
    again = evaluate_on_test("synth_test", data)
    assert again["mean_iu"] == pytest.approx(use_zoo.manifest["metrics"]["mean_iu"], abs=1e-9)


def test_cli_commands_accept_the_name(trained, use_zoo, tmp_path: Path, capsys) -> None:
    data, _ = trained
    image = next((data / "test" / "images").iterdir())
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                "synth_test",
                "--input",
                str(image),
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    assert (tmp_path / "p" / f"{image.stem}_label.png").is_file()
    out_json = tmp_path / "m.json"
    args = ["evaluate", "--checkpoint", "synth_test", "--data", str(data), "--json", str(out_json)]
    assert main([*args, "--out", str(tmp_path / "ev")]) == 0
    assert json.loads(out_json.read_text())["mean_iu"] == pytest.approx(
        use_zoo.manifest["metrics"]["mean_iu"], abs=1e-9
    )


def test_existing_path_wins_over_name(trained, use_zoo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("synth_test").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="^synth_test: not a readable fcnseg checkpoint"):
        load_checkpoint("synth_test")


def test_unknown_name_is_not_found(use_zoo) -> None:
    with pytest.raises(CheckpointError, match="^no_such_model: checkpoint not found$"):
        load_checkpoint("no_such_model")


def test_damaged_file_is_refused_in_one_line(
    trained, shipped, tmp_path, monkeypatch, capsys
) -> None:
    data, _ = trained
    root = tmp_path / "zoo"
    root.mkdir()
    for p in shipped.file.parent.iterdir():
        (root / p.name).write_bytes(p.read_bytes())
    pt = root / "synth_test.pt"
    blob = bytearray(pt.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit flipped in the middle of the weights
    pt.write_bytes(bytes(blob))
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    with pytest.raises(
        CheckpointError, match=r"^synth_test: built-in model file .* is damaged \(sha256"
    ):
        load_checkpoint("synth_test")
    image = next((data / "test" / "images").iterdir())
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                "synth_test",
                "--input",
                str(image),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err and "reinstall fcnseg" in err
    assert not (tmp_path / "o").exists()


def test_shipping_again_replaces(trained, shipped, tmp_path: Path, capsys) -> None:
    data, ckpt = trained
    root = tmp_path / "zoo"
    root.mkdir()
    for p in shipped.file.parent.iterdir():  # a model shipped before under the same name
        (root / p.name).write_bytes(p.read_bytes())
    first = zoo.find("synth_test", root)
    args = ["ship", str(ckpt), "--name", "synth_test", "--data", str(data), "--recipe", "second"]
    assert zoo_main([*args, "--root", str(root), "--tta-scales", "1", "--tta-flip"]) == 0
    assert "shipped synth_test" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == ["synth_test.json", "synth_test.pt"]
    again = zoo.find("synth_test", root)
    assert first.manifest["recipe"] != "second" and again.manifest["recipe"] == "second"
    assert again.manifest["sha256"] == first.manifest["sha256"]  # same weights, same bytes
    assert again.manifest["metrics_tta"]["tta"] == {"scales": [1.0], "flip": True}


def test_a_model_trained_on_the_test_split_shows_its_recipes_numbers(
    trained, tmp_path: Path, capsys
) -> None:
    """A release model trained on train + test: its re-evaluation on test is kept (it checks the
    file) but what is shown, everywhere, is its recipe's, trained without the test split."""
    data, ckpt = trained
    root = tmp_path / "zoo"
    root.mkdir()
    single, tta = tmp_path / "recipe.json", tmp_path / "recipe_tta.json"
    single.write_text(json.dumps({"mean_iu": 0.123, "pixel_acc": 0.456, "num_images": 4}))
    tta.write_text(json.dumps({"mean_iu": 0.135, "pixel_acc": 0.5, "tta": {"flip": True}}))
    args = ["ship", str(ckpt), "--name", "synth_all", "--data", str(data), "--recipe", "r",
            "--root", str(root), "--trained-on", "train + test, 12 images", "--test-in-training",
            "--recipe-metrics", str(single), str(tta)]  # fmt: skip
    assert zoo_main(args) == 0
    assert "mean IU 0.1230" in capsys.readouterr().out
    model = zoo.find("synth_all", root)
    man = model.manifest
    assert man["trained_on"] == "train + test, 12 images" and man["test_in_training"] is True
    assert man["recipe_metrics"]["metrics"]["mean_iu"] == 0.123
    assert man["metrics"]["mean_iu"] != 0.123  # the file's own re-evaluation, still recorded
    assert model.mean_iu == 0.123
    (row,) = zoo.builtin_rows(root)
    assert (row["mean_iu"], row["mean_iu_tta"], row["pixel_acc"]) == (0.123, 0.135, 0.456)
    lines = zoo.format_builtin_table(root)
    assert lines[2].split()[3] == f"{row['data']}*"
    assert lines[-1].strip().startswith("* trained on that test split too")


def test_ship_refuses_test_in_training_without_recipe_metrics(trained, tmp_path: Path) -> None:
    data, ckpt = trained
    with pytest.raises(FcnsegError, match="--test-in-training needs --recipe-metrics"):
        ship_model(ckpt, "ok", data=data, recipe="r", root=tmp_path, test_in_training=True)
    bad = tmp_path / "bad.json"
    bad.write_text('{"pixel_acc": 0.5}')
    with pytest.raises(FcnsegError, match="no mean_iu"):
        ship_model(ckpt, "ok", data=data, recipe="r", root=tmp_path, test_in_training=True,
                   recipe_metrics=[bad])  # fmt: skip
    with pytest.raises(FcnsegError, match="with --test-in-training"):
        ship_model(ckpt, "ok", data=data, recipe="r", root=tmp_path, recipe_metrics=[bad])
    assert list(tmp_path.iterdir()) == [bad]  # nothing shipped


def test_ship_refuses_bad_input(trained, tmp_path: Path, capsys) -> None:
    data, ckpt = trained
    with pytest.raises(FcnsegError, match="--name 'Bad-Name'"):
        ship_model(ckpt, "Bad-Name", data=data, recipe="r", root=tmp_path)
    with pytest.raises(FcnsegError, match="dataset folder not found"):
        ship_model(ckpt, "ok", data=tmp_path / "nope", recipe="r", root=tmp_path)
    assert (
        zoo_main(
            [
                "ship",
                str(tmp_path / "none.pt"),
                "--name",
                "ok",
                "--data",
                str(data),
                "--recipe",
                "r",
                "--root",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_rows_and_table(shipped) -> None:
    root = shipped.file.parent
    (row,) = zoo.builtin_rows(root)
    assert row["name"] == "synth_test" and row["mean_iu"] == shipped.manifest["metrics"]["mean_iu"]
    assert row["arch"] == "fcn8s_vgg16" and row["classes"] == 4
    lines = zoo.format_builtin_table(root)
    assert lines[2].split()[0] == "synth_test" and f"{row['mean_iu']:.3f}" in lines[2]
    assert zoo.best(root).name == "synth_test"
    assert zoo.format_builtin_table(root / "empty") == ["built-in models: none shipped"]


# The models shipped in the package (none until the CamVid models are shipped).
SHIPPED = zoo.builtin_models()


@pytest.mark.skipif(not SHIPPED, reason="no built-in model is shipped in src/fcnseg/zoo")
@pytest.mark.parametrize("model", SHIPPED, ids=lambda m: m.name)
def test_shipped_file_matches_its_manifest(model: zoo.BuiltinModel) -> None:
    assert zoo.sha256_file(model.file) == model.manifest["sha256"]
    assert model.file.stat().st_size == model.manifest["size_bytes"]
    ckpt = load_checkpoint(model.name)
    assert ckpt["dataset"]["class_names"] == model.manifest["classes"]


@pytest.mark.skipif(not SHIPPED, reason="no built-in model is shipped in src/fcnseg/zoo")
@pytest.mark.skipif(not DATASET1.is_dir(), reason=f"dataset1 not found at {DATASET1}")
@pytest.mark.parametrize("model", SHIPPED, ids=lambda m: m.name)
def test_shipped_model_reproduces_its_dataset1_metrics(model: zoo.BuiltinModel) -> None:
    metrics = evaluate_on_test(model.name, DATASET1)
    assert metrics["num_images"] == model.manifest["metrics"]["num_images"]
    assert metrics["mean_iu"] == pytest.approx(model.manifest["metrics"]["mean_iu"], abs=0.002)
    assert np.isfinite(metrics["pixel_acc"])
