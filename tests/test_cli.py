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

    assert proc.stdout.split() == list_models()
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
