"""Sub-commands of the CLI; each module has ``add_parser(sub)`` and does the I/O for its task."""

from __future__ import annotations

import argparse

from fcnseg.commands import (
    app,
    demo,
    download,
    evaluate,
    export,
    models,
    predict,
    train,
    verify_data,
)


def register_commands(sub: argparse._SubParsersAction) -> None:
    """Add every sub-command's parser to ``sub``."""
    for module in (models, verify_data, download, train, evaluate, predict, export, demo, app):
        module.add_parser(sub)
