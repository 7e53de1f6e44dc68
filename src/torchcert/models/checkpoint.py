"""Checkpoints in the original format ``{'state_dict', 'optimizer', 'epoch'}``, loaded safely.

Loading always uses ``torch.load(weights_only=True)``: a file that needs arbitrary pickled objects is
refused instead of executed. Saving is atomic (temporary file in the same folder, then ``os.replace``).
"""
from __future__ import annotations

import os
import re
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn

PathLike = Union[str, "os.PathLike[str]"]
_PREFIX = "module."
_GLOBAL = re.compile(r"\bglobal\b", re.IGNORECASE)  # torch's wording for a refused pickled class/function


class CheckpointError(ValueError):
    """A checkpoint could not be loaded, or does not fit the model; the message says why and the fix."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a checkpoint safely and return it as a dict with a ``'state_dict'`` entry.

    Accepts the original format (a dict with ``'state_dict'``, usually also ``'optimizer'`` and
    ``'epoch'``) and a bare state_dict (returned as ``{'state_dict': sd}``). A ``'module.'``
    (DataParallel) prefix carried by every key is stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {str(path)!r} not found (no such file)")
    raw = _safe_load(path, map_location)
    if isinstance(raw, Mapping) and "state_dict" in raw:
        checkpoint = dict(raw)
    elif isinstance(raw, Mapping) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        checkpoint = {"state_dict": raw}
    else:
        kind = f"dict with keys {sorted(map(str, raw))[:10]}" if isinstance(raw, Mapping) else type(raw).__name__
        raise CheckpointError(
            f"{path}: not a checkpoint: expected a dict with a 'state_dict' entry or a state_dict of "
            f"tensors, found a {kind}"
        )
    checkpoint["state_dict"] = _strip_prefix(checkpoint["state_dict"], path)
    return checkpoint


def _safe_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with the failure turned into one clear CheckpointError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if _GLOBAL.search(text):
            raise CheckpointError(
                f"{path}: refused for safety: the file holds pickled Python objects that are not tensors or "
                f"plain containers ({_last_line(text)}), and loading them could run arbitrary code. If you "
                "trust the file, convert it once: ckpt = torch.load(path, weights_only=False); then "
                "torchcert.models.save_checkpoint(new_path, ckpt['state_dict'], epoch=ckpt.get('epoch', 0))"
            ) from None
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint ({_last_line(text)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint ({_last_line(str(err))})") from None


def _last_line(text: str) -> str:
    """The most specific line of a long torch error message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Check the documentation")]
    for line in lines:
        if _GLOBAL.search(line) or "Unsupported operand" in line:
            return line
    if not lines:
        return "no details"
    first = lines[0]
    end = max(first.find(". "), first.find(": "))  # the first clause is the informative one
    return first if len(first) <= 160 else (first[:end + 1] if 0 < end < 160 else first[:157] + "...")


def _strip_prefix(state_dict: Any, path: Path) -> "OrderedDict[str, torch.Tensor]":
    """Copy of ``state_dict`` without a 'module.' prefix common to every key; checks it holds tensors."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, expected a dict of tensors")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: 'state_dict' entries that are not tensors: {bad[:10]}")
    strip = bool(state_dict) and all(str(k).startswith(_PREFIX) for k in state_dict)
    return OrderedDict((k[len(_PREFIX):] if strip else k, v) for k, v in state_dict.items())


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``model``, requiring identical keys and shapes.

    On mismatch raises CheckpointError naming every missing key, unexpected key and shape mismatch
    (name, expected shape, got shape). Only a missing ``*.num_batches_tracked`` (absent from very old
    checkpoints) is tolerated: the model keeps its own value.
    """
    own = model.state_dict()
    state = dict(state_dict)
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = _describe(missing, unexpected, shapes)
    if problems:
        raise CheckpointError("state_dict does not match the model: " + "; ".join(problems)
                              + " (check the model name and its width/linear_size/num_class)")
    model.load_state_dict(state, strict=True)


def _describe(missing: List[str], unexpected: List[str], shapes: List[str]) -> List[str]:
    parts = []
    if missing:
        parts.append(f"missing keys {missing}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected}")
    if shapes:
        parts.append("shape mismatches [" + ", ".join(shapes) + "]")
    return parts


def save_checkpoint(
    path: PathLike,
    state_dict: Mapping[str, torch.Tensor],
    optimizer_state: Optional[Mapping[str, Any]] = None,
    epoch: int = 0,
    **extra: Any,
) -> Path:
    """Write ``{'state_dict', 'optimizer', 'epoch', **extra}`` atomically; returns the path.

    ``'optimizer'`` is omitted when ``optimizer_state`` is None. Every value must be loadable with
    ``weights_only=True`` (tensors, numbers, strings, bools, None, lists/tuples/dicts of those),
    otherwise ValueError is raised before anything is written.
    """
    path = Path(path)
    checkpoint: Dict[str, Any] = {"state_dict": OrderedDict(state_dict)}
    if optimizer_state is not None:
        checkpoint["optimizer"] = optimizer_state
    checkpoint["epoch"] = epoch
    checkpoint.update(extra)
    _check_safe(checkpoint, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _check_safe(value: Any, where: str) -> None:
    """ValueError if ``value`` holds anything ``torch.load(weights_only=True)`` would refuse."""
    if value is None or isinstance(value, (torch.Tensor, bool, int, float, str, torch.dtype, torch.device)):
        return
    if isinstance(value, (list, tuple, set)):
        for i, item in enumerate(value):
            _check_safe(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_safe(key, f"{where} key")
            _check_safe(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where} is a {type(value).__name__}, which torch.load(weights_only=True) would refuse; "
        "store tensors, numbers, strings or lists/dicts of them"
    )
