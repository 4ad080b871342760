"""Every option of every command, given bad values: one error line, exit code 2, nothing written.

The cases are generated from the parser (and, for ``train``, from the option declarations), and
a coverage test fails when a command gains an option that no case exercises.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
import torch

from fcnseg.cli import build_parser, main
from fcnseg.training.config import TrainConfig, flag

# Options that cannot take a bad value (switches), or only name other options' values.
NO_BAD_VALUE = {"--help", "--version", "--summary", "--tta-flip", "--skip-bad", "--norm-eval",
                "--distill-flip", "--tensorboard", "--save-frames"}  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return dict(action.choices)


def _train_cases() -> list[tuple[str, list[str]]]:
    """Bad values for every declared training option, from its type, bounds and choices."""
    special = {
        "data": [["NOPE"], ["FILE"]],
        "out": [["FILE"], ["FILE/run"], ["@data/run"]],  # inside --data: read as data later
        "model": [["vgg99"]],
        "weights_backbone": [["NOPE.pth"], ["FILE"]],
        "init_from": [["NOPE.pt"], ["DIR"], ["FILE"]],
        "class_weights": [["1,2"], ["a,b,c,d"], ["-1,1,1,1"]],
        "accelerator": [["toaster"]],
        "devices": [["many"]],
        "strategy": [["telepathy"]],
        "dropout": [["0.5"]],  # a VGG16 option on a model without fc6/fc7 (see _train_argv)
        "head_channels": [["16"]],  # not an option of fcn8s_vgg16
        "average_from": [["0"], ["x"], ["nan"], ["99"]],  # 99: after the last epoch
        "description": [],
    }
    cases = []
    for f in TrainConfig.fields():
        if f.name in special:
            cases += [(flag(f.name), v) for v in special[f.name]]
            continue
        meta, kind = f.metadata, type(f.default) if f.default is not None else None
        values: list[list[str]] = []
        if meta["choices"]:
            values.append(["bogus"])
        if meta["low"] is not None:
            below = meta["low"] - 1 if isinstance(meta["low"], int) else -1
            values.append([str(below)] * (2 if f.name == "scale_range" else 1))
        if meta["high"] is not None:
            values.append([str(meta["high"] * 10 + 1)])
        if meta["low"] is not None or meta["high"] is not None:
            # NaN passes `value < low` and `value > high` alike: every range check must refuse it.
            values += [[v] * (2 if f.name == "scale_range" else 1) for v in ("nan", "inf")]
        if f.name == "scale_range":
            values += [["2", "1"], ["x", "1"]]
        elif kind is not str and not isinstance(f.default, bool) and not meta["choices"]:
            values.append(["x"])
        cases += [(flag(f.name), v) for v in values]
    return cases


def _cases() -> list[tuple[str, str, list[str]]]:
    common_ckpt = [["NOPE.pt"], ["DIR"], ["FILE"]]
    tta = [
        ("--tta-scales", ["0"]),
        ("--tta-scales", ["-1", "1"]),
        ("--tta-scales", ["x"]),
        ("--tta-scales", ["60"]),
        ("--tta-scales", ["nan"]),
    ]
    resize = [
        ("--resize", ["big"]),
        ("--resize", ["0"]),
        ("--resize", ["-480"]),
        ("--resize", ["99999"]),
        ("--resize", ["4097"]),
        ("--resize", ["http://x"]),
    ]
    tiles = [
        ("--tile", ["0"]),
        ("--tile", ["-5"]),
        ("--tile", ["1"]),
        ("--tile", ["63"]),
        ("--tile", ["100"]),
        ("--tile", ["x"]),
        ("--overlap", ["-1"]),
        ("--overlap", ["x"]),
    ]
    batch = [("--batch-size", ["0"]), ("--batch-size", ["x"])]
    table: dict[str, list[tuple[str, list[str]]]] = {
        "models": [("--num-classes", ["0"]), ("--num-classes", ["x"]),
                   ("--num-classes", ["100000000", "--summary"])],
        "verify-data": [("--data", ["NOPE"]), ("--data", ["FILE"]), ("--data", ["DIR"])],
        "train": [
            *_train_cases(),
            ("--config", ["NOPE.yaml"]), ("--config", ["DIR"]), ("--config", ["BADYAML"]),
            ("--resume", ["NOPE"]), ("--resume", ["DIR"]),
        ],
        "evaluate": [
            *[("--checkpoint", v) for v in common_ckpt],
            ("--data", ["NOPE"]), ("--data", ["FILE"]), ("--split", ["nosuchsplit"]),
            ("--json", ["DIR"]), ("--json", ["FILE/m.json"]), ("--out", ["FILE"]),
            ("--out", ["@data/test"]),  # inside --data: the pictures would be read as data
            ("--worst", ["-1"]), ("--worst", ["x"]), ("--device", ["toaster"]), *tta,
            ("--backend", ["tensorrt"]), ("--precision", ["fp8"]),
            ("--backend", ["torch", "--precision", "int8"]),
            ("--calibration", ["NOPE", "--precision", "int8", "--backend", "openvino"]),
            *resize, *tiles, *batch,
        ],
        "predict": [
            *[("--checkpoint", v) for v in common_ckpt],
            ("--input", ["NOPE.png"]), ("--input", ["EMPTYDIR"]), ("--out", ["FILE"]),
            ("--truth", ["NOPE"]), ("--truth", ["FILE"]),
            *tiles, ("--device", ["toaster"]), *resize,
            ("--precision", ["fp8"]), *batch, *tta,
            ("--alpha", ["1.5"]), ("--alpha", ["-0.1"]), ("--alpha", ["nan"]), ("--alpha", ["x"]),
            ("--backend", ["tensorrt"]), ("--backend", ["onnxruntime", "--precision", "bf16"]),
            ("--calibration", ["NOPE", "--precision", "int8", "--backend", "openvino"]),
        ],
        "export": [
            *[("--checkpoint", v) for v in common_ckpt],
            ("--out", ["DIR"]), ("--out", ["FILE/m.onnx"]), ("--opset", ["0"]), ("--opset", ["999"]),
            ("--opset", ["x"]),
        ],
        "app": [
            *[("--checkpoint", v) for v in common_ckpt], ("--host", ["no.such.host.invalid"]),
            ("--port", ["-1"]), ("--port", ["70000"]), ("--port", ["x"]),
            ("--examples", ["NOPE"]), ("--examples", ["FILE"]), ("--examples", ["EMPTYDIR"]),
            ("--device", ["toaster"]), ("--precision", ["fp8"]), ("--backend", ["tensorrt"]),
            ("--backend", ["onnxruntime", "--precision", "bf16"]), *resize, *tiles,
            ("--calibration", ["NOPE", "--precision", "int8", "--backend", "openvino"]),
        ],
        "download": [
            ("--to", ["FILE"]), ("--to", ["FILE/data"]), ("--url", ["not a url"]),
            ("--url", ["ftp://127.0.0.1/x.zip"]), ("--sha256", ["xyz"]), ("--sha256", ["ab" * 31]),
        ],
        "demo": [
            ("--out", ["FILE"]), ("--out", ["FULLDIR"]), ("--epochs", ["0"]), ("--epochs", ["x"]),
            ("--train-images", ["0"]), ("--train-images", ["x"]),
        ],
    }  # fmt: skip
    return [(cmd, opt, vals) for cmd, rows in table.items() for opt, vals in rows]


CASES = _cases()


def test_every_option_of_every_command_has_bad_value_cases() -> None:
    covered = {(cmd, opt) for cmd, opt, _ in CASES}
    missing = []
    for cmd, parser in _subparsers().items():
        for action in parser._actions:
            for opt in [o for o in action.option_strings if o.startswith("--")][:1]:
                if opt not in NO_BAD_VALUE and (cmd, opt) not in covered:
                    missing.append(f"{cmd} {opt}")
    assert not missing, f"options without bad-value cases: {missing}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny dataset, a valid checkpoint, and the odd paths the cases refer to."""
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data import open_dataset
    from fcnseg.data.synthetic import make_synthetic_dataset
    from fcnseg.models import build_model

    root = tmp_path_factory.mktemp("world")
    data = make_synthetic_dataset(
        root / "data", counts={"train": 4, "val": 2, "test": 2}, size=(32, 32)
    )
    torch.manual_seed(0)
    model = build_model("fcn8s_vgg16", num_classes=4, fc_channels=8)
    save_checkpoint(root / "model.pt", model, open_dataset(data).info)
    (root / "FILE").write_text("not what was expected\n")
    (root / "DIR").mkdir()
    (root / "EMPTYDIR").mkdir()
    (root / "FULLDIR").mkdir()
    (root / "FULLDIR" / "thesis.tex").write_text("mine")
    (root / "BADYAML").write_text("epochs: [1,\n")
    with socket.socket() as s:  # a port that is free now, for the app's otherwise valid options
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"root": root, "data": data, "ckpt": root / "model.pt", "port": port}


def _base(cmd: str, w: dict[str, Path], out: Path) -> dict[str, list[str]]:
    data, ckpt, image = str(w["data"]), str(w["ckpt"]), str(w["data"] / "test" / "images")
    return {
        "models": {},
        "verify-data": {"--data": [data]},
        "train": {"--data": [data], "--out": [str(out)], "--weights-backbone": ["none"],
                  "--fc-channels": ["8"], "--epochs": ["1"], "--workers": ["0"]},
        "evaluate": {"--checkpoint": [ckpt], "--data": [data], "--out": [str(out)]},
        "predict": {"--checkpoint": [ckpt], "--input": [image], "--out": [str(out)]},
        "export": {"--checkpoint": [ckpt], "--out": [str(out / "m.onnx")]},
        "demo": {"--out": [str(out)]},
        "app": {"--checkpoint": [ckpt], "--port": [str(w["port"])]},
        # A closed port: a case that got past the checks would fail there, never go online.
        "download": {"--to": [str(out)], "--url": [f"http://127.0.0.1:{w['port']}/d.zip"]},
    }[cmd]  # fmt: skip


def _argv(cmd: str, opt: str, values: list[str], w: dict[str, Path], out: Path) -> list[str]:
    opts = _base(cmd, w, out)
    opts[opt] = [
        str(w["root"] / v) if v.split("/")[0].isupper() else v.replace("@data", str(w["data"]))
        for v in values
    ]
    if cmd == "train" and opt == "--dropout":
        opts["--model"] = ["fcn8s_efficientnet_lite0"]
        opts.pop("--fc-channels")
    if cmd == "train" and opt == "--resume":
        opts = {opt: opts[opt]}
    positional = ["dataset1"] if cmd == "download" else []
    return [cmd, *positional, *[x for k, v in opts.items() for x in (k, *v)]]


def _value_options() -> list[tuple[str, str, int]]:
    """``(command, option, number of values)`` for every option that takes a value."""
    out = []
    for cmd, parser in _subparsers().items():
        for action in parser._actions:
            opts = [o for o in action.option_strings if o.startswith("--")]
            if opts and action.nargs != 0 and opts[0] not in NO_BAD_VALUE:
                out.append((cmd, opts[0], action.nargs if isinstance(action.nargs, int) else 1))
    return out


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("cmd", "opt", "values"), CASES, ids=[f"{c} {o} {' '.join(v)}" for c, o, v in CASES]
)
def test_a_bad_value_is_one_line_and_exit_2(world, capsys, monkeypatch, cmd, opt, values) -> None:
    def serve(*args, **kwargs):
        raise AssertionError("fcnseg app would serve the page: a bad option was not caught")

    monkeypatch.setattr("fcnseg.app.serve", serve)
    out = world["root"] / "out"
    before = _tree(world["root"])
    argv = _argv(cmd, opt, values, world, out)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a wrong type or choice
        code = exc.code
    err = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.strip() and "it/s]" not in line
    ]
    assert code == 2, f"{argv} exited {code}"
    assert len(err) == 1 and err[0].startswith(f"fcnseg {cmd}: error: "), err
    assert _tree(world["root"]) == before, f"{argv} left {_tree(world['root']) - before}"


@pytest.mark.parametrize(("cmd", "opt", "n"), _value_options(), ids=lambda v: str(v))
def test_an_empty_value_is_one_line_and_exit_2(world, capsys, monkeypatch, cmd, opt, n) -> None:
    # `--out ''` wrote into the current folder and `--input ''` read it: Path("") is ".".
    def serve(*args, **kwargs):
        raise AssertionError("fcnseg app would serve the page: an empty value was not caught")

    monkeypatch.setattr("fcnseg.app.serve", serve)
    monkeypatch.chdir(world["root"] / "EMPTYDIR")  # what '' would name: nothing may land here
    out = world["root"] / "out"
    before = _tree(world["root"])
    argv = _argv(cmd, opt, [""] * n, world, out)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: an empty choice or number
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, f"{argv} exited {code}"
    assert len(err) == 1 and err[0].startswith(f"fcnseg {cmd}: error: "), err
    assert _tree(world["root"]) == before
