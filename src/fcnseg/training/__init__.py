"""Training: ``fcnseg train`` and :func:`fcnseg.train`.

The package reads top to bottom:

- :mod:`~fcnseg.training.config`: every option declared once (:class:`TrainConfig`), YAML
  recipes, the generated CLI flags;
- :mod:`~fcnseg.training.setup`: data, model, loss and optimizer built from a config;
- :mod:`~fcnseg.training.loop`: the epochs on Lightning Fabric (unfreezing, loaders, validation);
- :mod:`~fcnseg.training.run_folder`: what is written, in an order that survives a kill;
- :mod:`~fcnseg.training.diagnostics` and :mod:`~fcnseg.training.repro`: collapse warnings;
  seeds, git hash and checksums.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fcnseg.files import same_file
from fcnseg.training.config import ConfigError, TrainConfig, read_yaml, recipe_names, resolve
from fcnseg.training.loop import TrainResult
from fcnseg.training.run_folder import CONFIG, RunFolderError, config_is_ours

__all__ = ["TrainConfig", "TrainResult", "config_from", "recipe_names", "train"]


def config_from(
    config: str | Path | dict[str, Any] | TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    **options: Any,
) -> TrainConfig:
    """The resolved options: defaults < a resumed run's saved options < ``config`` < ``options``.

    Args:
        config: a shipped recipe's name (``fcnseg.training.recipe_names()``), a YAML file, a
            dict of options or a :class:`TrainConfig`.
        resume: a run folder to continue (its saved ``config.yaml`` is the base; ``out`` is it).
        **options: any option of :class:`TrainConfig` (``data=``, ``out=``, ``epochs=`` ...);
            ``None`` means "not given".
    """
    layers: list[dict[str, Any]] = []
    if resume is not None and (not isinstance(resume, str | os.PathLike) or not str(resume)):
        raise ConfigError(f"resume must be a run folder path, got {resume!r:.80}")
    if resume is not None:
        saved = Path(resume) / CONFIG
        if not saved.is_file():
            raise RunFolderError(f"{resume}: no {CONFIG}, not a run folder to resume")
        if not config_is_ours(saved):  # resuming would rewrite a config of one's own
            raise RunFolderError(
                f"{saved}: not a config.yaml written by fcnseg train (no run_info)"
            )
        layers.append(read_yaml(saved))
    if isinstance(config, TrainConfig):
        layers.append(config.to_dict())
    elif isinstance(config, dict):
        layers.append(config)
    elif isinstance(config, str | os.PathLike) and str(config).strip():
        layers.append(read_yaml(config))
    elif config is not None:
        raise ConfigError(
            "config must be a recipe name, a YAML file, a dict of options or a TrainConfig, "
            f"got {config!r:.80}"
        )
    layers.append(options)
    if resume is not None:
        layers.append({"out": str(resume)})
    return resolve(*layers)


def train(
    config: str | Path | dict[str, Any] | TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """Train an FCN, as ``fcnseg train`` does, and return the best validation result.

    Examples:
        >>> import fcnseg
        >>> result = fcnseg.train("dataset1_lite0_frozen", data="data/dataset1", out="runs/a")
        >>> result = fcnseg.train(model="fcn8s_efficientnet_lite0", freeze="backbone",
        ...                       data="my_data", out="runs/b", epochs=20)
        >>> result = fcnseg.train(resume="runs/b", epochs=40)  # continue, with more epochs

    Returns:
        A :class:`TrainResult`: the run folder, the best validation mean IU and its epoch, the
        number of epochs done, whether the run stopped early (``patience``), every epoch's metrics.

    Raises:
        FcnsegError: a bad option, dataset, weights file or run folder (one-line message).
    """
    from fcnseg.training.loop import run

    cfg = config_from(config, resume=resume, **options)
    if resume is None and isinstance(config, str | Path) and cfg.out is not None:
        saved = Path(cfg.out) / CONFIG
        if same_file(config, saved):  # the new run's config.yaml would replace its --config
            raise RunFolderError(
                f"{saved}: the --config file is the new run's config.yaml, which the run writes; "
                "copy it out of the run folder first"
            )
    return run(cfg, resume=resume is not None)
