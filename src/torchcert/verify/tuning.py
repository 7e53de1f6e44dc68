"""Tuning statistics of the original get_tuning_stats.py: how far a training loss is from the "BaB loss".

For each sample the margins get branch-and-bound lower bounds (bound mode, ``timeout`` s per margin, combined
by max with max(IBP, CROWN)); ``bab_loss = ibp_loss(bab bounds)``; the training loss of the sample (CC-IBP,
MTL-IBP, Exp-IBP or SABR, see :mod:`.evaluation`) gives ``bab_err = loss - bab_loss``; means and the RMSE of
the error are reported, with the share of samples whose BaB bounds are all positive (``bab_ok``).
"""
from __future__ import annotations

import math
from typing import Any, Dict

import torch

from torchcert import bounds, losses
from torchcert.bounds import Box

from .evaluation import LossSettings, bab_margin_bounds, crown_lower, mean_losses, sample_losses

LOSS_KEYS = {"cc-ibp": "ccibp_loss", "mtl-ibp": "mtlibp_loss", "exp-ibp": "expibp_loss", "sabr": "sabr_loss"}


def tuning_stats(setup, settings: LossSettings, loss: str, start: int, end: int, timeout: float,
                 seed: int = 0, batch_size: int = 256) -> Dict[str, float]:
    """Validation means (``val_nat_loss``, ``val_adv_loss``, ``val_ibp_loss``) over the whole split, as the
    original, then the BaB statistics over samples [start, end) (end -1: all); each group is labelled with its
    own sample count (``val_samples``, ``bab_samples``)."""
    if loss not in LOSS_KEYS:
        raise ValueError(f"unknown loss {loss!r} for tuning statistics; valid: {', '.join(LOSS_KEYS)}")
    from torchcert.data import data_range, normalize

    overall = mean_losses(setup, settings, 0, -1, batch_size, seed)
    out: Dict[str, Any] = {f"val_{k}": overall[k] for k in ("nat_loss", "adv_loss", "ibp_loss")}
    end = len(setup.split) if end < 0 else min(end, len(setup.split))
    low, high = data_range(setup.info, setup.device, setup.dtype)
    std = torch.tensor(setup.info.std, dtype=setup.dtype, device=setup.device).view(1, -1, 1, 1)
    radius, factor = setup.eps / std, settings.eps_factor
    gen = torch.Generator(setup.device).manual_seed(seed)
    sums = {"bab_loss": 0.0, "loss": 0.0, "err": 0.0, "sq": 0.0, "ok": 0.0}
    from torchcert.progress import Progress

    for idx in Progress(range(start, end), end - start, "tuning-stats", every=10.0):
        x = normalize(setup.split.images[idx:idx + 1].to(setup.device), setup.info, setup.dtype)
        label = setup.split.labels[idx:idx + 1].to(setup.device)
        box = Box(torch.max(x - radius, low), torch.min(x + radius, high))
        attack_box = Box(torch.max(x - radius * factor, low), torch.min(x + radius * factor, high))
        C = bounds.margin_matrix(label, int(setup.info.num_class)).to(setup.dtype)
        bab = bab_margin_bounds(setup.model, box, C, timeout, crown_lower(setup.model, box, C, settings.spec_chunk))
        bab_loss = float(losses.ibp_loss(bab))
        values = sample_losses(setup.model, x, label, box, attack_box, radius * factor * settings.sabr_coeff,
                               low, high, settings, gen)
        spec = float(values[LOSS_KEYS[loss]][0])
        sums["bab_loss"] += bab_loss
        sums["loss"] += spec
        sums["err"] += spec - bab_loss
        sums["sq"] += (spec - bab_loss) ** 2
        sums["ok"] += float(bab.min() > 0)
    n = max(end - start, 1)
    key = LOSS_KEYS[loss].replace("_loss", "")
    out.update({"val_bab_loss": sums["bab_loss"] / n, f"val_{key}_loss": sums["loss"] / n,
                "val_bab_err_loss": sums["err"] / n, "val_bab_rmse_loss": math.sqrt(sums["sq"] / n),
                "val_bab_ok": sums["ok"] / n, "val_samples": len(setup.split), "bab_samples": end - start})
    return out
