"""Which shipped preset a run was trained with, recovered from its ``config.yaml`` (the run folder does not
record the preset's name, but it does record the resolved config, including the preset's ``source`` line)."""
from __future__ import annotations

import functools
from typing import Any, Dict, Tuple

#: suffix of a preset name whose run changed some of its keys (``digits/cc-ibp*``)
OVERRIDDEN = "*"
#: ``run`` keys that do not change what is trained (threads, bars, loggers, device) and are not compared
NOT_RECIPE = ("threads", "progress", "tensorboard", "wandb", "device")


def recipe(config: Dict[str, Any]) -> Dict[str, Any]:
    """``config`` without the :data:`NOT_RECIPE` keys of its ``run`` section."""
    run = {k: v for k, v in config.get("run", {}).items() if k not in NOT_RECIPE}
    return {**config, "run": run}


@functools.lru_cache(maxsize=1)
def _resolved_presets() -> Tuple[Tuple[str, Dict[str, Any]], ...]:
    from torchcert.config import config_to_dict, list_presets, load_config
    from torchcert.train.config import TrainConfig

    return tuple((name, recipe(config_to_dict(load_config(TrainConfig, name)))) for name in list_presets())


def preset_of(config: Dict[str, Any]) -> str:
    """The preset whose resolved config equals ``config`` (but for :data:`NOT_RECIPE`); the preset with the same
    ``source`` (the original command it reproduces) and :data:`OVERRIDDEN` appended when some keys were
    overridden; ``"custom"`` when no preset has that source (a YAML file of one's own), ``"?"`` when the config is
    unknown (no config.yaml)."""
    if not config:
        return "?"
    same_source, wanted = None, recipe(config)
    for name, resolved in _resolved_presets():
        if resolved == wanted:
            return name
        if same_source is None and config.get("source") and resolved.get("source") == config.get("source"):
            same_source = name
    return same_source + OVERRIDDEN if same_source else "custom"
