"""Schema of a training run: nested frozen dataclasses, defaults equal to the original ``train.py`` defaults.

Load one with ``torchcert.config.load_config(TrainConfig, "mnist-0.1/cc-ibp", ["optim.lr=1e-3"])``. The mapping
from the original command-line flags is given next to each field (``--flag``); ``method=fast`` of the original
README commands is ``regulariser.enabled: true`` plus ``model.init: ibp``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple

from torchcert.config import ConfigError

_REG_OBJECTIVES = ("relu", "tightness", "std")


@dataclass(frozen=True)
class ModelConfig:
    """``name`` (--model) with keyword ``options`` (--model-params); ``init`` (--manual-init/--init-method)."""

    name: str = "cnn"
    options: Dict[str, Any] = field(default_factory=dict)
    init: Literal["default", "ibp", "kaiming"] = "default"


@dataclass(frozen=True)
class DataConfig:
    """Dataset and batching. ``augment`` (not --no-data-aug) applies the dataset's original augmentation.

    ``valid_share`` (--valid_share): share of the training set kept for training, the rest is the test split.
    ``train_limit``/``test_limit``: use only the first N samples (quick experiments and tests).
    """

    dataset: str = "cifar10"
    batch_size: int = 128
    test_batch_size: Optional[int] = None
    augment: bool = True
    valid_share: Optional[float] = None
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None


@dataclass(frozen=True)
class EpsConfig:
    """Target ε in [0, 1] pixel units (config ``bound_params.eps`` / --eps) and its SmoothedScheduler ramp.

    ``start``/``length``/``mid``/``beta``: --scheduler_opts; ``train_mul``: --train-eps-mul (training ε is the
    scheduled ε times this); ``min_eps``: --min-eps; ``fixed``: --fix-eps (no ramp).
    """

    value: float = 0.03137
    start: int = 2
    length: int = 80
    mid: float = 0.25
    beta: float = 4.0
    train_mul: float = 1.0
    min_eps: float = 0.0
    fixed: bool = False


@dataclass(frozen=True)
class MethodConfig:
    """Training loss (--ccibp/--mtlibp/--expibp/--sabr, default plain IBP) and its coefficient α or λ.

    ``bounding`` (--bounding_algorithm): bounds used by the training loss; evaluation always uses IBP.
    ``l1_coeff`` (--l1_coeff): weight of ``Σ|W|`` (added for every method except plain IBP, as the original).
    """

    loss: str = "ibp"
    coeff: float = 0.0
    bounding: Literal["ibp", "crown-ibp"] = "ibp"
    l1_coeff: float = 1e-5


@dataclass(frozen=True)
class RegulariserConfig:
    """Shi et al. (2021) warm-up regulariser (--reg, implied by --method=fast).

    ``weight`` (--reg-lambda), ``tol`` (--tol), ``objectives`` (--reg-obj), ``min_eps`` (--min-eps-reg),
    ``decay`` (not --no-reg-dec: weight·(1 - ε/ε_max)), ``epochs``: on for epochs 1..epochs
    (default ``eps.start + eps.length - 1``, as the original).
    """

    enabled: bool = False
    weight: float = 0.5
    tol: float = 0.5
    objectives: Tuple[str, ...] = ("relu", "tightness")
    min_eps: float = 1e-6
    decay: bool = True
    epochs: Optional[int] = None


@dataclass(frozen=True)
class AttackConfig:
    """PGD: --train_att_n_steps/--train_att_step_size, --test_att_n_steps/--test_att_step_size, --attack_eps_factor.

    Step sizes are relative to the half-width of the box; 0 steps means no attack (the clean logits stand in).
    """

    train_steps: int = 0
    train_step_size: float = 0.25
    test_steps: int = 0
    test_step_size: Optional[float] = None
    eps_factor: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    """--opt, --lr, --momentum, --weight-decay, --grad-norm, --grad-acc-steps, --lr-decay-milestones/-factor."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    grad_acc_steps: int = 1
    lr_milestones: Tuple[int, ...] = (10000,)
    lr_decay_factor: float = 0.2


@dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases logging (the ``wandb`` extra), on when ``project`` is set: ``run.wandb.project=NAME``.

    ``name``: the W&B run's name (default: the run folder's name); ``mode``: ``online`` (needs an account and a
    network) or ``offline`` (written under the run folder only; ``wandb sync`` uploads it later).
    """

    project: Optional[str] = None
    name: Optional[str] = None
    mode: Literal["online", "offline"] = "online"


@dataclass(frozen=True)
class RunConfig:
    """--num-epochs, --seed (config default 100), --device, TF32 (off unless asked), --test-interval.

    ``progress``: live progress bars (shown only on a terminal; logs get one line per epoch).
    ``threads``: CPU threads for PyTorch (None keeps PyTorch's default; 1 is fastest for tiny networks).
    ``tensorboard``: scalars per epoch in ``RUN/tensorboard``; ``wandb``: a W&B run (see :class:`WandbConfig`).
    ``sync_bn``: under torchrun, BatchNorm normalises by the statistics of the global batch (forward and bounds),
    so N processes compute what one process computes: the original semantics, the default. False: each process
    uses its own rows' statistics (no communication per layer; results then depend on the number of processes).
    """

    epochs: int = 160
    seed: int = 100
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tf32: bool = False
    test_interval: int = 1
    progress: bool = True
    tensorboard: bool = False
    threads: Optional[int] = None
    wandb: WandbConfig = field(default_factory=WandbConfig)
    sync_bn: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A full training run; ``source`` records where the recipe comes from (e.g. the original command)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eps: EpsConfig = field(default_factory=EpsConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    regulariser: RegulariserConfig = field(default_factory=RegulariserConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    source: str = ""

    @property
    def reg_epochs(self) -> int:
        """Number of initial epochs with the Shi regulariser on (0 when disabled)."""
        if not self.regulariser.enabled:
            return 0
        if self.regulariser.epochs is not None:
            return self.regulariser.epochs
        return self.eps.start + self.eps.length - 1

    @property
    def test_batch_size(self) -> int:
        return self.data.test_batch_size or self.data.batch_size

    def validate(self) -> None:
        """Raise ConfigError naming the field and the valid choices for any inconsistent setting."""
        _validate_model(self.model)
        _validate_data(self.data)
        _validate_eps(self.eps)
        _validate_method(self.method, self.attack)
        _validate_regulariser(self.regulariser)
        _validate_attack(self.attack)
        _validate_optim(self.optim, self.data)
        _validate_run(self.run)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _validate_model(model: ModelConfig) -> None:
    from torchcert.models.registry import list_models, model_options

    _require(model.name in list_models(), f"model.name: unknown model {model.name!r}; valid: {', '.join(list_models())}")
    options = model_options(model.name)
    unknown = sorted(set(model.options) - set(options))
    _require(not unknown, f"model.options: unknown option(s) {unknown} for {model.name!r}; valid: {sorted(options)}")


def _validate_data(data: DataConfig) -> None:
    from torchcert.data.info import DATASET_NAMES, canonical_name

    try:
        canonical_name(data.dataset)
    except ValueError:
        raise ConfigError(f"data.dataset: unknown dataset {data.dataset!r}; valid: {', '.join(DATASET_NAMES)}")
    _require(data.batch_size >= 1, f"data.batch_size must be >= 1, got {data.batch_size}")
    _require(data.test_batch_size is None or data.test_batch_size >= 1, "data.test_batch_size must be >= 1 or null")
    _require(data.valid_share is None or 0.0 < data.valid_share < 1.0,
             f"data.valid_share (share kept for training) must lie in (0, 1) or be null, got {data.valid_share}")
    for key in ("train_limit", "test_limit"):
        value = getattr(data, key)
        _require(value is None or value >= 1, f"data.{key} must be >= 1 or null, got {value}")


def _validate_eps(eps: EpsConfig) -> None:
    _require(0.0 < eps.value <= 1.0, f"eps.value must lie in (0, 1] (pixel units), got {eps.value}")
    _require(eps.start >= 1 and eps.length >= 1, f"eps.start and eps.length must be >= 1, got {eps.start}, {eps.length}")
    _require(0.0 <= eps.mid <= 1.0, f"eps.mid must lie in [0, 1], got {eps.mid}")
    _require(eps.beta >= 2.0, f"eps.beta must be >= 2, got {eps.beta}")
    _require(eps.train_mul > 0.0, f"eps.train_mul must be > 0, got {eps.train_mul}")
    _require(eps.min_eps >= 0.0, f"eps.min_eps must be >= 0, got {eps.min_eps}")


def _validate_method(method: MethodConfig, attack: AttackConfig) -> None:
    from torchcert.losses import LOSSES

    _require(method.loss in LOSSES, f"method.loss: unknown loss {method.loss!r}; valid: {', '.join(LOSSES)}")
    if method.loss in ("cc-ibp", "mtl-ibp", "exp-ibp"):
        _require(0.0 <= method.coeff <= 1.0, f"method.coeff (α) of {method.loss} must lie in [0, 1], got {method.coeff}")
    if method.loss == "sabr":
        _require(0.0 < method.coeff <= 1.0, f"method.coeff (λ) of sabr must lie in (0, 1], got {method.coeff}")
        _require(attack.train_steps >= 1, "method.loss=sabr needs an attack: set attack.train_steps >= 1")
    _require(method.l1_coeff >= 0.0, f"method.l1_coeff must be >= 0, got {method.l1_coeff}")


def _validate_regulariser(reg: RegulariserConfig) -> None:
    bad = sorted(set(reg.objectives) - set(_REG_OBJECTIVES))
    _require(not bad, f"regulariser.objectives: unknown {bad}; valid: {', '.join(_REG_OBJECTIVES)}")
    _require(reg.weight >= 0.0 and reg.tol > 0.0, "regulariser.weight must be >= 0 and regulariser.tol > 0")
    _require(reg.min_eps >= 0.0, f"regulariser.min_eps must be >= 0, got {reg.min_eps}")
    _require(reg.epochs is None or reg.epochs >= 0, f"regulariser.epochs must be >= 0 or null, got {reg.epochs}")


def _validate_attack(attack: AttackConfig) -> None:
    _require(attack.train_steps >= 0 and attack.test_steps >= 0, "attack.train_steps and attack.test_steps must be >= 0")
    _require(attack.train_steps == 0 or attack.train_step_size > 0, "attack.train_step_size must be > 0")
    _require(attack.test_steps == 0 or (attack.test_step_size or 0) > 0,
             "attack.test_steps > 0 needs attack.test_step_size > 0 (relative to the box half-width, e.g. 0.1)")
    _require(attack.eps_factor > 0.0, f"attack.eps_factor must be > 0, got {attack.eps_factor}")


def _validate_optim(optim: OptimConfig, data: DataConfig) -> None:
    _require(optim.lr > 0.0, f"optim.lr must be > 0, got {optim.lr}")
    _require(optim.weight_decay >= 0.0 and optim.grad_clip > 0.0, "optim.weight_decay >= 0 and optim.grad_clip > 0")
    _require(optim.grad_acc_steps >= 1 and data.batch_size % optim.grad_acc_steps == 0,
             f"optim.grad_acc_steps ({optim.grad_acc_steps}) must be >= 1 and divide data.batch_size ({data.batch_size})")
    milestones = list(optim.lr_milestones)
    _require(all(m >= 1 for m in milestones) and milestones == sorted(set(milestones)),
             f"optim.lr_milestones must be strictly increasing positive epochs, got {milestones}")
    _require(0.0 < optim.lr_decay_factor <= 1.0, f"optim.lr_decay_factor must lie in (0, 1], got {optim.lr_decay_factor}")


def _validate_run(run: RunConfig) -> None:
    _require(run.epochs >= 1, f"run.epochs must be >= 1, got {run.epochs}")
    _require(run.test_interval >= 1, f"run.test_interval must be >= 1, got {run.test_interval}")
    _require(run.threads is None or run.threads >= 1, f"run.threads must be >= 1 or null, got {run.threads}")
