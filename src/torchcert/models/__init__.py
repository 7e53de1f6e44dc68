"""Model zoo: the networks of the original code under their names, and safe checkpoint I/O.

>>> model = build_model("cnn_7layer_bn2", in_ch=3, in_dim=32, width=8, linear_size=32)
"""
from . import cnn7, resnet, small  # noqa: F401  (importing registers the models)
from .checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from .layers import Flatten
from .registry import ModelSpec, build_model, list_models, model_options, model_spec, register_model

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "Flatten",
    "ModelSpec",
    "build_model",
    "list_models",
    "load_checkpoint",
    "load_state_dict_strict",
    "model_options",
    "model_spec",
    "register_model",
    "save_checkpoint",
]
