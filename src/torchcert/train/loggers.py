"""Experiment loggers fed one epoch record at a time (the record ``metrics.jsonl`` gets): TensorBoard
(``run.tensorboard``) and Weights & Biases (``run.wandb.project``), both optional extras.

Both log the same flat scalars: ``train/<metric>``, ``test/<metric>`` (test epochs only), ``train_eps``, ``lr``
and ``epoch_seconds``, at step = epoch. TensorBoard event files go to ``RUN/tensorboard``; a W&B run is written
under ``RUN/wandb`` (``mode: offline`` needs no network or account; ``wandb sync RUN/wandb/offline-run-*``
uploads it later).
"""
from __future__ import annotations

import logging
import math
import uuid
from pathlib import Path
from typing import Any, Dict, List, Protocol

from torchcert.config import config_to_dict
from torchcert.train.config import TrainConfig

log = logging.getLogger(__name__)


class EpochLogger(Protocol):
    def log(self, record: Dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(record: Dict[str, Any]) -> Dict[str, float]:
    """The flat scalars of one epoch record (non-finite values left out: W&B and TensorBoard reject NaN)."""
    flat = {f"{split}/{k}": v for split in ("train", "test") for k, v in record.get(split, {}).items()}
    flat.update({k: record[k] for k in ("train_eps", "lr", "epoch_seconds") if k in record})
    return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and math.isfinite(v)}


class TensorBoardLogger:
    """Scalars to ``RUN/tensorboard`` through ``torch.utils.tensorboard`` (flushed every epoch)."""

    def __init__(self, out: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"))

    def log(self, record: Dict[str, Any]) -> None:
        for key, value in scalars(record).items():
            self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run in ``RUN/wandb`` named ``run.wandb.name`` (default: the run folder's name), holding the
    resolved config; a resumed run logs into the same W&B run (its id is kept in ``RUN/wandb/run_id``)."""

    def __init__(self, cfg: TrainConfig, out: Path) -> None:
        import wandb

        w = cfg.run.wandb
        folder = out / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / "run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(project=w.project, name=w.name or out.resolve().name, mode=w.mode, dir=str(out),
                              config=config_to_dict(cfg), id=run_id, resume="allow")

    def log(self, record: Dict[str, Any]) -> None:
        self.run.log(scalars(record), step=int(record["epoch"]))

    def close(self) -> None:
        self.run.finish()


def open_loggers(cfg: TrainConfig, out: Path) -> List[EpochLogger]:
    """The loggers the config asks for. A missing tensorboard is a warning (the run goes on, as before); a
    missing wandb is a ValueError, since a W&B run was asked for by name."""
    loggers: List[EpochLogger] = []
    if cfg.run.tensorboard:
        try:
            loggers.append(TensorBoardLogger(out))
        except ImportError:
            log.warning("run.tensorboard is on but tensorboard is not installed (pip install tensorboard); skipping")
    if cfg.run.wandb.project:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ValueError("run.wandb.project is set but wandb is not installed: pip install wandb (or "
                             "pip install 'torchcert[wandb]'), or leave run.wandb.project unset") from None
        loggers.append(WandbLogger(cfg, out))
    return loggers
