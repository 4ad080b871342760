"""The command line: help, and errors as one line with a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

from fcnseg.cli import main


def test_help_lists_commands(capsys) -> None:
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "Fully Convolutional Networks" in out and "demo" in out


def test_python_dash_m_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fcnseg", "models"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    from fcnseg.models import list_models

    listed = proc.stdout.split("\n\n")[0].splitlines()[1:]
    assert [line.strip() for line in listed] == list_models()
    assert "built-in models" in proc.stdout
    assert "fcn8s_vgg16" in proc.stdout and "fcn8s_efficientnet_lite0" in proc.stdout


def test_demo_runs_the_whole_pipeline(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "16"]) == 0
    text = capsys.readouterr().out
    assert "test mean IU" in text
    for name in (
        "run/checkpoint_best.pt",
        "run/metrics.csv",
        "run/curves.png",
        "eval/confusion_matrix.png",
        "predict/test_000_triplet.png",
        "test_metrics.json",
    ):
        assert (out / name).is_file(), name


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    assert main(["demo", "--out", str(out), "--epochs", "1", "--train-images", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was not made by fcnseg demo" in err[0]
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_demo_replaces_only_what_an_earlier_demo_wrote(tmp_path) -> None:
    from fcnseg.commands.demo import MARKER, OUTPUTS, claim_folder

    out = tmp_path / "demo"
    claim_folder(out)  # new folder: made and marked
    assert (out / MARKER).is_file()
    for name in OUTPUTS:
        (out / name).mkdir() if "." not in name else (out / name).write_text("old")
    (out / "notes.txt").write_text("mine")
    claim_folder(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_folder(empty)  # an empty folder may be taken
    assert (empty / MARKER).is_file()


def test_commands_do_not_drive_the_cli() -> None:
    """The demo calls library functions (no argv lists), so no import cycle through the CLI."""
    import ast
    from pathlib import Path

    import fcnseg.commands

    for path in Path(fcnseg.commands.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "fcnseg.cli" not in mods, path.name


def test_first_line_of_an_error() -> None:
    from fcnseg.errors import first_line

    assert first_line(RuntimeError("\n  boom: disk\nTraceback ...")) == "boom: disk"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("x" * 500), limit=50) == "x" * 47 + "..."
