"""Resumable training checkpoints: the original format ``{'state_dict', 'optimizer', 'epoch'}`` plus what exact
resumption needs (global batch ``step``, RNG states, elapsed time), written atomically, read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from torchcert.models import load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "ckpt_last.pt"


def rng_states(generators: Dict[str, torch.Generator]) -> Dict[str, torch.Tensor]:
    """States of the global CPU (and CUDA, if initialised) RNGs and of the named generators."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    states.update({f"gen_{name}": gen.get_state() for name, gen in generators.items()})
    return states


def restore_rng_states(states: Dict[str, torch.Tensor], generators: Dict[str, torch.Generator]) -> None:
    """Inverse of :func:`rng_states`; ValueError if a generator's state is missing."""
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"].cpu())
    for name, gen in generators.items():
        key = f"gen_{name}"
        if key not in states:
            raise ValueError(f"checkpoint has no state for RNG {name!r}; it was not written by this trainer")
        gen.set_state(states[key].cpu())


def save_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                        generators: Dict[str, torch.Generator], wall_seconds: float,
                        config: Optional[Dict[str, Any]] = None) -> Path:
    """Atomically write the checkpoint after ``epoch`` (1-based) and ``step`` batches in total."""
    return save_checkpoint(path, model.state_dict(), optimizer.state_dict(), epoch, step=step,
                           rng=rng_states(generators), wall_seconds=wall_seconds, config=config or {})


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        generators: Dict[str, torch.Generator], device: torch.device) -> Dict[str, Any]:
    """Restore model, optimiser and RNGs from ``path``; returns the checkpoint (``epoch``, ``step``, ...)."""
    checkpoint = load_checkpoint(path, map_location=device)
    if "step" not in checkpoint or "rng" not in checkpoint:
        raise ValueError(f"{path} is not a resumable training checkpoint (no 'step'/'rng'); start a new run")
    model.load_state_dict(checkpoint["state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    restore_rng_states(checkpoint["rng"], generators)
    return checkpoint
