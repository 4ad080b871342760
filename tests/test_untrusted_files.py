"""Users' files that would make fcnseg work without bound or accept damaged data: YAML aliases
("billion laughs"), lossy (JPEG) masks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.data.info import load_description
from fcnseg.errors import DataError
from fcnseg.training.config import ConfigError, read_yaml


def _laughs(key: str, levels: int) -> str:
    """``key:`` a list of nested YAML aliases: a few hundred bytes standing for 9**levels strings."""
    items = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"{key}:\n" + "".join(f"  - {item}\n" for item in items)


def test_yaml_aliases_are_refused_in_descriptions_and_configs(tmp_path: Path) -> None:
    """H4: with 9 levels (387 million items in 425 bytes) the message took 50 s and 8 GB; 5
    levels here, so that the test stays quick even where the fix is missing."""
    desc = tmp_path / "dataset.yaml"
    desc.write_text("classes: [a, b]\n" + _laughs("notes", 5))
    with pytest.raises(DataError) as info:
        load_description(desc)
    message = str(info.value)
    assert "aliases" in message and "line 4" in message and len(message) < 300, message[:300]
    config = tmp_path / "recipe.yaml"
    config.write_text("lr: 0.1\n" + _laughs("description", 5))
    with pytest.raises(ConfigError, match="line 4.*aliases") as info:
        read_yaml(config)
    assert len(str(info.value)) < 300


def test_jpeg_masks_are_refused(tiny_data: Path, tmp_path: Path, capsys) -> None:
    """H6: JPEG masks passed verify-data ("OK") with 23.6% of their pixels relabelled."""
    from conftest import train_args
    from PIL import Image

    from fcnseg.cli import main

    png = tiny_data / "train" / "masks" / "train_001.png"
    jpeg = png.with_suffix(".jpg")
    Image.open(png).save(jpeg, quality=75)
    png.unlink()
    assert main(["verify-data", "--data", str(tiny_data)]) == 1
    out = capsys.readouterr()
    assert "train_001.jpg: mask is a JPEG file" in out.out + out.err
    assert main(train_args(tiny_data, tmp_path / "run", "--epochs", "1")) == 2
    assert "mask is a JPEG file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_messages_show_a_bounded_part_of_a_bad_value() -> None:
    """A small value with shared parts (as a crafted checkpoint's pickle can hold) stands for
    9**40 items; a message that printed it in full would never finish."""
    from fcnseg.data.info import DatasetInfo
    from fcnseg.training.config import resolve

    bomb: list = ["lol"] * 9
    for _ in range(40):
        bomb = [bomb] * 9
    with pytest.raises(DataError, match=r"'notes' must be a list of strings, got \[\[\[") as info:
        DatasetInfo.from_dict({"classes": ["a", "b"], "notes": bomb})
    assert len(str(info.value)) < 200
    with pytest.raises(ConfigError, match="description must be a non-empty text") as info:
        resolve({"description": bomb}, require_paths=False)
    assert len(str(info.value)) < 200
