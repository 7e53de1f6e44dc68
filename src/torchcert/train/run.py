"""A training run: data on the device, the epoch loop, evaluation, metrics, checkpoints and resumption.

Run folder: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per epoch: train and, at test
epochs, test metrics, ε, lr, time), ``ckpt_last.pt`` (after every epoch, atomic) and ``summary.json`` (test
split at the end: ``nat_acc``, ``pgd_acc``, ``ibp_verified_acc``, ``wall_seconds``, ...); ``tensorboard/`` and
``wandb/`` when those loggers are on (:mod:`torchcert.train.loggers`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

from torchcert.bounds import BoundGraph
from torchcert.config import config_to_dict, dump_config
from torchcert.data import (Split, augment, augmentation_for, data_range, dataset_info, iterate_batches, load_dataset,
                            normalize, train_valid_split)
from torchcert.losses import get_loss
from torchcert.models import build_model
from torchcert.train.checkpoint import CHECKPOINT_NAME, load_training_state, save_training_state
from torchcert.train.config import TrainConfig
from torchcert.train.distributed import World, reduce_meter, rows, share_buffers, wrap
from torchcert.train.init import initialise
from torchcert.train.loggers import EpochLogger, open_loggers
from torchcert.train.loop import BatchEps, Meter, StepSettings, eval_step, summarise, train_step
from torchcert.train.schedules import is_reg_epoch, multistep_lr, smoothed_eps

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`train`: the run folder, the final checkpoint, the summary and the trained model."""

    out_dir: Path
    checkpoint: Path
    summary: Dict[str, Any]
    model: nn.Module


def resolve_device(name: Optional[str]) -> torch.device:
    """``auto`` (or None) -> cuda if available else cpu; ValueError when cuda is asked for but absent."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def load_splits(cfg: TrainConfig, data_dir: Optional[PathLike], device: torch.device,
                download: bool = False) -> Tuple[Split, Split]:
    """Training and test splits on ``device`` (test = held-out training part when ``valid_share`` is set);
    ``download`` fetches missing MNIST/CIFAR-10 files (checksum-verified)."""
    name = cfg.data.dataset
    train_split = load_dataset(name, "train", data_dir, device=device, download=download)
    if cfg.data.valid_share is not None:
        train_split, test_split = train_valid_split(train_split, cfg.data.valid_share)
    else:
        test_split = load_dataset(name, "test", data_dir, device=device, download=download)
    if cfg.data.train_limit is not None:
        train_split = train_split.subset(slice(0, cfg.data.train_limit))
    if cfg.data.test_limit is not None:
        test_split = test_split.subset(slice(0, cfg.data.test_limit))
    return train_split, test_split


def build_model_for(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The configured network on ``device``, initialised as configured (global RNG, seeded by the caller)."""
    info = dataset_info(cfg.data.dataset)
    model = build_model(cfg.model.name, info.in_ch, info.in_dim, info.num_class, **cfg.model.options)
    initialise(model, cfg.model.init)
    return model.to(device)


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) with the configured learning rate and weight decay."""
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def build_step_settings(cfg: TrainConfig, device: torch.device) -> StepSettings:
    """The per-step constants: loss, coefficients, data range and normalisation, attack and regulariser."""
    info = dataset_info(cfg.data.dataset)
    data_min, data_max = data_range(info, device)
    r = cfg.regulariser
    return StepSettings(
        loss=get_loss(cfg.method.loss), coeff=cfg.method.coeff, l1_coeff=cfg.method.l1_coeff,
        bounding=cfg.method.bounding, num_class=info.num_class,
        std=torch.tensor(info.std, device=device), data_min=data_min, data_max=data_max,
        attack_steps=cfg.attack.train_steps, attack_step_size=cfg.attack.train_step_size,
        reg_weight=r.weight, reg_tol=r.tol, reg_objectives=tuple(r.objectives), reg_min_eps=r.min_eps,
        reg_decay=r.decay, grad_acc_steps=cfg.optim.grad_acc_steps, grad_clip=cfg.optim.grad_clip)


def batch_eps(cfg: TrainConfig, step: int, epoch: int, epoch_length: int) -> BatchEps:
    """ε of training batch ``step`` (0-based, global) in ``epoch``: ramp × train_mul, attack factor, clipping."""
    e = cfg.eps
    scheduled = smoothed_eps(step, e.value, epoch_length, e.start, e.length, e.mid, e.beta)
    eps = scheduled * e.train_mul
    attack_eps = eps * cfg.attack.eps_factor
    clip = (lambda v: e.value) if e.fixed else (lambda v: max(v, e.min_eps))
    return BatchEps(clip(eps), clip(attack_eps), scheduled, e.value, reg=is_reg_epoch(epoch, cfg.reg_epochs))


def train_batches(cfg: TrainConfig, split: Split, generator: torch.Generator) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled, augmented (on the device) and normalised training batches; randomness from ``generator``."""
    kind = augmentation_for(cfg.data.dataset) if cfg.data.augment else "none"
    for images, labels in iterate_batches(split, cfg.data.batch_size, shuffle=True, generator=generator):
        yield normalize(augment(images, kind, generator), split.info), labels


def evaluate(cfg: TrainConfig, model: nn.Module, split: Split, settings: StepSettings,
             device: torch.device, progress: bool = False, world: World = World()) -> Dict[str, float]:
    """Natural, PGD and IBP-verified accuracy/loss on ``split`` at the target ε (eval mode, seeded attack); in a
    distributed run each rank evaluates its rows of every batch (PGD starts drawn for the whole batch) and the
    metrics are summed over the ranks."""
    from torchcert.progress import Progress

    model.eval()
    meter, generator = Meter(), torch.Generator(device).manual_seed(cfg.run.seed)
    batches = iterate_batches(split, cfg.test_batch_size)
    total = math.ceil(len(split) / cfg.test_batch_size)
    for images, labels in Progress(batches, total, "test", progress and world.main):
        x = normalize(images, split.info)
        noise = None
        if world.distributed and cfg.attack.test_steps > 0:
            noise = rows(torch.zeros_like(x).uniform_(generator=generator), world)
        mine = rows(x, world)
        if mine.shape[0]:  # a last batch smaller than the world leaves some ranks without rows
            eval_step(model, mine, rows(labels, world), cfg.eps.value, settings, meter, cfg.attack.test_steps,
                      cfg.attack.test_step_size, generator, noise)
    model.train()
    return summarise(_reduced(meter, world))


def _reduced(meter: Meter, world: World) -> Meter:
    """The meter with its sums and counts added up over the ranks."""
    out = Meter()
    out.sums, out.counts = reduce_meter(meter.sums, meter.counts, world)
    return out


def train_epoch(cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, split: Split,
                settings: StepSettings, epoch: int, step: int, generators: Dict[str, torch.Generator],
                world: World = World(), ddp: Optional[nn.Module] = None) -> Tuple[Dict[str, float], int, float]:
    """One pass over the training split; returns (metrics over all ranks, global step after it, ε of the last
    batch). Every rank draws the same global batches; ``train_step`` gives each its rows."""
    from torchcert.progress import Progress

    model.train()
    meter, eps = Meter(), 0.0
    epoch_length = math.ceil(len(split) / cfg.data.batch_size)
    shown = cfg.run.progress and world.main
    bar = Progress(train_batches(cfg, split, generators["data"]), epoch_length, f"train epoch {epoch}", shown)
    for i, (x, labels) in enumerate(bar):
        b = batch_eps(cfg, step, epoch, epoch_length)
        train_step(model, optimizer, x, labels, b, settings, meter, generators["attack"], world, ddp,
                   cfg.run.sync_bn)
        step, eps = step + 1, b.eps
        if shown and (i % 10 == 0 or i == epoch_length - 1):
            keys = ("loss", "nat_acc", "ver_acc")
            bar.update(**{k: f"{v:.3f}" for k, v in summarise(meter).items() if k in keys}, train_eps=f"{eps:.4f}")
    if not cfg.run.sync_bn:
        share_buffers(model, world)
    return summarise(_reduced(meter, world)), step, eps


def check_world(cfg: TrainConfig, train_size: int, world: World, test_size: Optional[int] = None) -> None:
    """Every micro-batch (the last, smaller batch of an epoch included) must give each rank at least one row, and
    the test split each rank at least one sample (so that every rank reports the same metrics)."""
    if not world.distributed:
        return
    if test_size is not None and test_size < world.size:
        raise ValueError(f"{world.size} processes need at least {world.size} test samples, got {test_size}")
    last = train_size % cfg.data.batch_size or cfg.data.batch_size
    smallest = min(last, cfg.data.batch_size) // cfg.optim.grad_acc_steps
    if smallest < world.size:
        raise ValueError(f"{world.size} processes need micro-batches of at least {world.size} samples, but "
                         f"data.batch_size={cfg.data.batch_size} over {train_size} samples with "
                         f"optim.grad_acc_steps={cfg.optim.grad_acc_steps} leaves one of {smallest}; change "
                         "data.batch_size or data.train_limit, or use fewer processes")


def train(config: TrainConfig, out_dir: PathLike, data_dir: Optional[PathLike] = None,
          device: Optional[str] = None, resume: bool = False, download: bool = False,
          world: World = World()) -> RunResult:
    """Train as ``config`` says, writing the run folder ``out_dir``; ``resume`` continues from its checkpoint;
    ``download`` fetches a missing dataset (MNIST, CIFAR-10) with checksum verification.

    ``world``: this process's place in a torchrun launch (:func:`.distributed.init_world`; the process group
    must be initialised): DistributedDataParallel over the ranks, each computing its rows of every global batch;
    only rank 0 writes the run folder. A checkpoint does not depend on the number of processes, so a run resumes
    with any."""
    config.validate()
    cfg, out = config, Path(out_dir)
    dev = resolve_device(device or cfg.run.device)
    if world.distributed and dev.type == "cuda":
        dev = torch.device("cuda", world.local_rank)
    start_epoch, step, wall = _check_run_dir(cfg, out, resume)
    _set_tf32(cfg.run.tf32)
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    train_split, test_split = load_splits(cfg, data_dir, dev, download)
    check_world(cfg, len(train_split), world, len(test_split))
    model = build_model_for(cfg, dev)
    optimizer = build_optimizer(cfg, model)
    if start_epoch == 0 and world.main:  # only now that data and model load: a failed start leaves no folder
        _start_run_dir(cfg, out)
    generators = {"data": torch.Generator().manual_seed(cfg.run.seed),
                  "attack": torch.Generator(dev).manual_seed(cfg.run.seed + 1)}
    if start_epoch > 0:
        state = load_training_state(out / CHECKPOINT_NAME, model, optimizer, generators, dev)
        start_epoch, step, wall = state["epoch"], state["step"], float(state.get("wall_seconds", 0.0))
        if world.main:
            _truncate_metrics(out / "metrics.jsonl", start_epoch)
            log.info("resuming %s after epoch %d (step %d)", out, start_epoch, step)
    settings = build_step_settings(cfg, dev)
    net = BoundGraph(model)  # the same module, its graph traced once for every bound of the run
    ddp = wrap(net, world, dev)
    loggers = open_loggers(cfg, out) if world.main else []
    test_metrics: Dict[str, float] = {}
    for epoch in range(start_epoch + 1, cfg.run.epochs + 1):
        started = time.perf_counter()
        lr = multistep_lr(cfg.optim.lr, epoch, cfg.optim.lr_milestones, cfg.optim.lr_decay_factor)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_metrics, step, eps = train_epoch(cfg, net, optimizer, train_split, settings, epoch, step, generators,
                                               world, None if ddp is net else ddp)
        record = {"epoch": epoch, "step": step, "train_eps": eps, "lr": lr, "train": train_metrics}
        if epoch % cfg.run.test_interval == 0 or epoch == cfg.run.epochs:
            test_metrics = evaluate(cfg, net, test_split, settings, dev, cfg.run.progress, world)
            record["test"] = test_metrics
        record["epoch_seconds"] = time.perf_counter() - started
        wall += record["epoch_seconds"]
        record["time"] = wall
        if world.main:
            save_training_state(out / CHECKPOINT_NAME, model, optimizer, epoch, step, generators, wall,
                                config_to_dict(cfg))
            _append_jsonl(out / "metrics.jsonl", record)
            _log_epoch(record, loggers)
    for logger in loggers:
        logger.close()
    if not test_metrics:  # resumed a finished run: evaluate the final weights
        test_metrics = evaluate(cfg, net, test_split, settings, dev, world=world)
    summary = _summary(cfg, test_metrics, wall, len(test_split), dev)
    if world.main:
        _atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return RunResult(out, out / CHECKPOINT_NAME, summary, model)


#: files a finished or interrupted run leaves; a new run refuses a folder holding any of them
RUN_FILES = (CHECKPOINT_NAME, "metrics.jsonl", "summary.json")


def _check_run_dir(cfg: TrainConfig, out: Path, resume: bool) -> Tuple[int, int, float]:
    """Check ``out`` before anything is computed; returns 1 as start epoch when a checkpoint is to be resumed.

    A new run needs a folder without the files of another run (a config.yaml alone, left by a start that failed,
    is overwritten); ``resume`` needs a checkpoint and the same config."""
    checkpoint, config_file = out / CHECKPOINT_NAME, out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a run folder")
    if resume:
        if not checkpoint.exists():
            raise ValueError(f"nothing to resume in {out}: it has no {CHECKPOINT_NAME}; start the run without "
                             "--resume")
        if config_file.exists() and not _same_config(config_file, cfg):
            raise ValueError(f"{config_file} differs from the config given: resume with the same preset and "
                             "overrides (see that file), or start a new run in another folder")
        return 1, 0, 0.0
    _check_creatable(out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        hint = "pass --resume to continue it" if CHECKPOINT_NAME in found else "remove them"
        raise ValueError(f"{out} already holds {', '.join(found)} of another run; {hint} or choose another --out "
                         "folder")
    return 0, 0, 0.0


def _same_config(path: Path, cfg: TrainConfig) -> bool:
    """``path`` (a run's config.yaml) describes ``cfg``: the same text, or the same config once fields added to
    the schema since it was written take their defaults."""
    if path.read_text() == dump_config(cfg):
        return True
    from torchcert.config import ConfigError, load_config

    try:
        return load_config(TrainConfig, path) == cfg
    except ConfigError:
        return False


def _check_creatable(out: Path) -> None:
    """ValueError now, not after loading data, when ``out`` cannot be created or written."""
    base = out
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"cannot create the run folder {out}: {base} is a file")
    try:
        tempfile.TemporaryDirectory(dir=base).cleanup()
    except OSError as err:
        raise ValueError(f"cannot write the run folder {out}: {err.strerror or err}") from None


def _start_run_dir(cfg: TrainConfig, out: Path) -> None:
    """Create the run folder and write its config.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.yaml", dump_config(cfg))


def _set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _append_jsonl(path: Path, record: Dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the metric lines of epochs up to ``last_epoch`` (a killed run may have written more)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] <= last_epoch]
    _atomic_write(path, "".join(ln + "\n" for ln in lines))


def _log_epoch(record: Dict[str, Any], loggers: List[EpochLogger]) -> None:
    test = record.get("test")
    log.info("epoch %d train_eps %.5f lr %.2e train %s%s", record["epoch"], record["train_eps"], record["lr"],
             {k: round(v, 4) for k, v in record["train"].items()},
             f" test {({k: round(v, 4) for k, v in test.items()})}" if test else "")
    for logger in loggers:
        logger.log(record)


def _summary(cfg: TrainConfig, test: Dict[str, float], wall: float, n_test: int,
             device: torch.device) -> Dict[str, Any]:
    summary = {
        "nat_acc": test.get("nat_acc"), "pgd_acc": test.get("adv_acc"), "ibp_verified_acc": test.get("ver_acc"),
        "nat_loss": test.get("nat_loss"), "pgd_loss": test.get("adv_loss"), "ibp_loss": test.get("ver_loss"),
        "eps": cfg.eps.value, "test_samples": n_test, "epochs": cfg.run.epochs, "method": cfg.method.loss,
        "model": cfg.model.name, "dataset": cfg.data.dataset, "device": str(device), "wall_seconds": wall,
        "checkpoint": CHECKPOINT_NAME,
    }
    return summary
