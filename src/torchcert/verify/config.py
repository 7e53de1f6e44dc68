"""Schema of a verification run: how to verify (which model, data and ε to verify are the command's arguments).

Load one with ``load_config(VerifyConfig, "my_verify.yaml", ["bab.branching=babsr", "batch_size=500"])`` (see
:mod:`torchcert.config`: YAML plus dotted ``key=value`` overrides, unknown keys are errors);
``torchcert show-config --verify [FILE] [key=value ...]`` prints one resolved. The defaults are those of
``torchcert verify`` (the original ``verify.py`` with PGD-40 and its step size).

Every field but ``batch_size`` can change a verdict and is stored in the results file's settings header;
``batch_size`` only groups samples for the batched stages (:mod:`.batched`), which give each sample the verdict
of the per-sample cascade, so results computed with any batch size are reused by a run with another.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Tuple

from torchcert.config import ConfigError

from .bab import BabSettings
from .branching import BRANCHING
from .cascade import METHODS


@dataclass(frozen=True)
class PgdConfig:
    """The attack run after the clean check (original ``--test_att_n_steps``/``--test_att_step_size``): ``steps``
    (0: none) of size ``step_size`` relative to the box half-width, from one uniform random start."""

    steps: int = 40
    step_size: float = 0.035


@dataclass(frozen=True)
class AlphaConfig:
    """α-CROWN on the samples IBP and CROWN leave open: ``iterations`` Adam steps on the lower ReLU slopes."""

    iterations: int = 20


@dataclass(frozen=True)
class VerifyConfig:
    """A verification run.

    ``methods``: the bounding stages, a subset of ibp, crown, alpha, bab, run in that order (``[ibp, crown]`` is
    the original ``--crown_ver``); ``batch_size``: samples per batch of the clean check, PGD, IBP and CROWN (the
    original ``--ib_batch_size``); ``timeout``: branch-and-bound seconds per sample (it replaces ``bab.timeout``);
    ``spec_batch``: margins bounded per call (original ``--lirpa_crown_batch``); ``bound_dtype``: precision of the
    verdict bounds; ``seed``: of the attacks' random starts (each sample gets ``seed·1000003 + idx``);
    ``bab.branching``: the split heuristic, by name (:data:`torchcert.verify.branching.BRANCHING`).
    """

    methods: Tuple[str, ...] = METHODS
    batch_size: int = 100
    timeout: float = 60.0
    pgd: PgdConfig = field(default_factory=PgdConfig)
    alpha: AlphaConfig = field(default_factory=AlphaConfig)
    bab: BabSettings = field(default_factory=BabSettings)
    spec_batch: Optional[int] = None
    bound_dtype: Literal["float64", "float32"] = "float64"
    seed: int = 0

    def validate(self) -> None:
        """Raise ConfigError naming the field and the valid values of any setting that cannot be meant."""
        unknown = [m for m in self.methods if m not in METHODS]
        _require(bool(self.methods) and not unknown,
                 f"methods: unknown {unknown or 'empty list'}; choose a subset of {', '.join(METHODS)}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(math.isfinite(self.timeout) and self.timeout > 0,
                 f"timeout must be a positive number of seconds, got {self.timeout}")
        _require(self.pgd.steps >= 0, f"pgd.steps must be >= 0, got {self.pgd.steps}")
        _require(math.isfinite(self.pgd.step_size) and self.pgd.step_size > 0,
                 f"pgd.step_size must be > 0, got {self.pgd.step_size}")
        _require(self.alpha.iterations >= 0, f"alpha.iterations must be >= 0, got {self.alpha.iterations}")
        _require(self.spec_batch is None or self.spec_batch >= 1, f"spec_batch must be >= 1, got {self.spec_batch}")
        _require(self.bab.timeout == BabSettings.timeout,
                 "bab.timeout: set the top-level timeout (branch-and-bound seconds per sample) instead")
        _validate_bab(self.bab)

    @property
    def ordered_methods(self) -> Tuple[str, ...]:
        """``methods`` in cascade order, without repeats."""
        return tuple(m for m in METHODS if m in self.methods)

    def bab_settings(self) -> BabSettings:
        """The branch-and-bound settings with the run's timeout."""
        from dataclasses import replace

        return replace(self.bab, timeout=self.timeout)


def _validate_bab(bab: BabSettings) -> None:
    _require(bab.branching in BRANCHING, f"bab.branching: unknown heuristic {bab.branching!r}; valid: "
                                         f"{', '.join(sorted(BRANCHING))}")
    for key in ("batch_size", "max_domains", "candidates", "attack_restarts"):
        _require(getattr(bab, key) >= 1, f"bab.{key} must be >= 1, got {getattr(bab, key)}")
    for key in ("dive", "root_iterations", "attack_steps"):
        _require(getattr(bab, key) >= 0, f"bab.{key} must be >= 0, got {getattr(bab, key)}")
    _require(bab.optim.iterations >= 1, f"bab.optim.iterations must be >= 1, got {bab.optim.iterations}")
    _require(bab.optim.lr_alpha > 0 and bab.optim.lr_beta > 0, "bab.optim.lr_alpha and bab.optim.lr_beta must be > 0")
    _require(bab.lp_tolerance >= 0, f"bab.lp_tolerance must be >= 0, got {bab.lp_tolerance}")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
