"""Shared set-up of the evaluation commands (verify, losses, tuning-stats): which model, data and ε, from a
preset, the run folder's ``config.yaml`` beside the checkpoint, or explicit flags (flags win)."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import yaml
from torch import nn

from torchcert.bounds import input_box
from torchcert.data import DatasetInfo, Split, data_range, dataset_info, load_dataset, normalize, train_valid_split
from torchcert.models import build_model, load_checkpoint, load_state_dict_strict

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class EvalSetup:
    """A loaded model (eval mode, on ``device``, in ``dtype``), the evaluated split and the perturbation."""

    model: nn.Module
    info: DatasetInfo
    split: Split
    eps: float
    device: torch.device
    dtype: torch.dtype
    config: Any  # TrainConfig or None
    model_name: str = ""  # the registry name and its options, e.g. "mlp(width=32, depth=2)"

    def sample(self, idx: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Clean input x and its box (each (1, C, H, W)) and the label of sample ``idx``."""
        x, lower, upper, labels = self.samples([idx])
        return x, lower, upper, int(labels[0])

    def samples(self, indices) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean inputs x and their boxes (each (B, C, H, W)) and the labels (B,) of the samples ``indices``
        (row by row what :meth:`sample` gives: normalisation and the box are elementwise)."""
        rows = torch.as_tensor(list(indices), dtype=torch.long)
        x = normalize(self.split.images[rows].to(self.device), self.info, self.dtype)
        low, high = data_range(self.info, self.device, self.dtype)
        std = torch.tensor(self.info.std, dtype=self.dtype, device=self.device)
        box = input_box(x, self.eps, None, std, low, high)
        return x, box.lower, box.upper, self.split.labels[rows].to(self.device)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --preset | --dataset/--model/--model-params/--eps, --data-dir, --device, --dtype."""
    parser.add_argument("--checkpoint", "--load", required=True, metavar="PATH",
                        help="checkpoint (torchcert run's ckpt_last.pt or an original-code checkpoint)")
    parser.add_argument("--preset", help="training preset giving dataset, model and eps (e.g. mnist-0.1/cc-ibp); "
                                         "default: config.yaml beside the checkpoint, if any")
    parser.add_argument("--dataset", help="mnist, cifar10, tinyimagenet, imagenet64 or digits")
    parser.add_argument("--model", help="model name of the original code, e.g. cnn, cnn_7layer_bn_imagenet, or a "
                                        "model of your own as package.module:function (called with in_ch, in_dim, "
                                        "num_class and the --model-params)")
    parser.add_argument("--model-params", default="", metavar="k=v,...", help="model options, e.g. num_class=1000")
    parser.add_argument("--eps", type=float, help="L-inf radius on the [0, 1] pixel scale (default: the preset's)")
    parser.add_argument("--data-dir", metavar="DIR", help="dataset folder (default ./data/<dataset>)")
    parser.add_argument("--download", action="store_true",
                        help="download a missing dataset (MNIST, CIFAR-10; checksum-verified) into --data-dir")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES),
                        help="precision the network runs in (clean, PGD and counterexample checks; the verdict's "
                             "rounding tolerance is sized for it); verdict bounds are float64 (verify: --bound-dtype)")


def parse_model_params(text: str) -> Dict[str, Any]:
    """``"width=8,linear_size=32"`` -> {"width": 8, "linear_size": 32} (values parsed as YAML scalars)."""
    out: Dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model-params item {item!r} is not key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _config(preset: Optional[str], checkpoint: str) -> Any:
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig

    if preset:
        return load_config(TrainConfig, preset)
    beside = Path(checkpoint).parent / "config.yaml"
    return load_config(TrainConfig, beside) if beside.is_file() else None


def _pick(flag: Any, config: Any, path: str, what: str) -> Any:
    if flag is not None:
        return flag
    if config is None:
        raise ValueError(f"no {what}: pass --{what} or --preset (or keep config.yaml beside the checkpoint)")
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def build_setup(args: argparse.Namespace, split: str = "test", valid_share: Optional[float] = None) -> EvalSetup:
    """:func:`load_setup` from the parsed options of :func:`add_model_arguments` (the commands' side)."""
    return load_setup(args.checkpoint, preset=args.preset, dataset=args.dataset, model=args.model,
                      model_params=args.model_params, eps=args.eps, data_dir=args.data_dir, device=args.device,
                      dtype=args.dtype, download=getattr(args, "download", False), split=split,
                      valid_share=valid_share)


def load_setup(checkpoint: Union[str, Path], *, preset: Optional[str] = None, dataset: Optional[str] = None,
               model: Optional[str] = None, model_params: str = "", eps: Optional[float] = None,
               data_dir: Optional[Union[str, Path]] = None, device: str = "cpu", dtype: str = "float32",
               download: bool = False, split: str = "test", valid_share: Optional[float] = None) -> EvalSetup:
    """Load model and data: dataset, model and ε from the arguments, else ``preset``, else ``config.yaml`` beside
    the checkpoint; ``split`` "test", "train" or "valid" (needs ``valid_share``); ``download`` fetches a missing
    dataset (MNIST, CIFAR-10; checksum-verified); ``device`` e.g. "cpu", "cuda" or "cuda:1"."""
    if torch.cuda.is_available():  # TF32 is not precise enough for verification
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    config = _config(preset, str(checkpoint))
    dataset = _pick(dataset, config, "data.dataset", "dataset")
    name = _pick(model, config, "model.name", "model")
    eps = float(_pick(eps, config, "eps.value", "eps"))
    if not (math.isfinite(eps) and 0 <= eps <= 1):
        raise ValueError(f"--eps must lie in [0, 1] (pixel scale), got {eps}")
    options = dict(config.model.options) if config is not None and model is None else {}
    options.update(parse_model_params(model_params))
    info = dataset_info(dataset)
    torch_device, torch_dtype = torch.device(device), DTYPES[dtype]
    num_class = options.pop("num_class", info.num_class)
    if model is not None and ":" in model:  # a model of one's own, named on the command line only
        network = model_from_reference(model, info.in_ch, info.in_dim, num_class, options)
    else:
        network = build_model(name, info.in_ch, info.in_dim, num_class, **options)
    load_state_dict_strict(network, load_checkpoint(checkpoint)["state_dict"])
    network = network.to(device=torch_device, dtype=torch_dtype).eval()
    data = _load_split(dataset, split, data_dir, valid_share, download)
    described = f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(options.items()))})"
    return EvalSetup(network, info, data, eps, torch_device, torch_dtype, config, described)


def model_from_reference(reference: str, in_ch: int, in_dim: int, num_class: int, options: Dict[str, Any]) -> nn.Module:
    """``"package.module:function"`` -> ``function(in_ch, in_dim, num_class, **options)``, an ``nn.Module`` built the
    way registry models are (the module is imported, as ``python -m`` would; nothing is evaluated). Accepted only
    from the command line, never from a config file."""
    import importlib

    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name.isidentifier():
        raise ValueError(f"--model {reference!r}: a model of your own is given as package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--model {reference!r}: cannot import {module_name} ({err}); is it on PYTHONPATH?") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"--model {reference!r}: {module_name} has no function {function_name}")
    model = function(in_ch, in_dim, num_class, **options)
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {reference!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _load_split(dataset: str, split: str, data_dir: Optional[str], valid_share: Optional[float],
                download: bool = False) -> Split:
    if split == "valid":
        if valid_share is None:
            raise ValueError("the validation split needs --valid-share (the share of training data kept for training)")
        return train_valid_split(load_dataset(dataset, "train", data_dir, download=download), valid_share)[1]
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, test, valid")
    return load_dataset(dataset, split, data_dir, download=download)
