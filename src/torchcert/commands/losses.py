"""``torchcert losses``: natural, adversarial, IBP, CROWN and expressive (CC/MTL/Exp-IBP, SABR) losses of a trained
network on the test or training split, as the original log_losses.py (optionally with branch-and-bound bounds)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from torchcert.verify.setup import add_model_arguments

    parser = subparsers.add_parser("losses", help="log the losses of a trained network (original log_losses.py)")
    add_model_arguments(parser)
    add_loss_arguments(parser)
    parser.add_argument("--on-train", action="store_true", help="use the training split (original "
                                                               "--log_losses_on_train)")
    parser.add_argument("--bab-timeout", type=float, help="also a BaB loss: seconds of bound-mode BaB per margin")
    parser.set_defaults(run=run)


def add_loss_arguments(parser: argparse.ArgumentParser) -> None:
    """Coefficients and attack settings shared with tuning-stats (defaults from the preset / config.yaml)."""
    for name in ("ccibp", "mtlibp", "expibp", "sabr"):
        parser.add_argument(f"--{name}-coeff", type=float, help=f"{name} coefficient (default: the preset's "
                                                                  "coeff when its loss is this one, else 0)")
    parser.add_argument("--test-att-steps", type=int, default=40, help="PGD steps of the test attack")
    parser.add_argument("--test-att-step-size", type=float, default=0.035, help="test attack step (relative)")
    parser.add_argument("--train-att-steps", type=int, help="steps of the training attack (default: preset's)")
    parser.add_argument("--train-att-step-size", type=float, help="training attack step (default: preset's)")
    parser.add_argument("--attack-eps-factor", type=float, help="training attack eps multiplier (default: preset's)")
    parser.add_argument("--valid-share", type=float, help="evaluate the validation part of the training split "
                                                          "(share kept for training, as the original)")
    parser.add_argument("--start", type=int, default=0, help="first sample index")
    parser.add_argument("--end", type=int, default=-1, help="one past the last sample index (-1: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts")
    parser.add_argument("--out", metavar="FILE", help="JSON output (default: beside the checkpoint)")


def loss_settings(args: argparse.Namespace, config) -> "LossSettings":
    from torchcert.verify.evaluation import LossSettings

    method = getattr(config, "method", None)
    attack = getattr(config, "attack", None)
    preset_loss = {"cc-ibp": "ccibp", "mtl-ibp": "mtlibp", "exp-ibp": "expibp", "sabr": "sabr"}.get(
        getattr(method, "loss", ""), "")

    def coeff(name: str) -> float:
        flag = getattr(args, f"{name}_coeff")
        return flag if flag is not None else (method.coeff if name == preset_loss else 0.0)

    def from_attack(flag, key: str, default: float):
        return flag if flag is not None else (getattr(attack, key) if attack is not None else default)

    return LossSettings(
        coeff("ccibp"), coeff("mtlibp"), coeff("expibp"), coeff("sabr"), args.test_att_steps,
        args.test_att_step_size, from_attack(args.train_att_steps, "train_steps", 1),
        from_attack(args.train_att_step_size, "train_step_size", 10.0),
        from_attack(args.attack_eps_factor, "eps_factor", 1.0))


def split_name(args: argparse.Namespace) -> str:
    if args.valid_share is not None:
        return "valid"
    return "train" if getattr(args, "on_train", False) else "test"


def check_loss_arguments(args: argparse.Namespace) -> None:
    """Refuse numbers that cannot be meant before anything is computed (ValueError naming the option)."""
    numbers = [("--test-att-steps", args.test_att_steps, lambda v: v >= 0),
               ("--test-att-step-size", args.test_att_step_size, lambda v: v > 0),
               ("--train-att-steps", args.train_att_steps, lambda v: v >= 0),
               ("--train-att-step-size", args.train_att_step_size, lambda v: v > 0),
               ("--attack-eps-factor", args.attack_eps_factor, lambda v: v >= 0),
               ("--valid-share", args.valid_share, lambda v: 0 < v < 1),
               ("--start", args.start, lambda v: v >= 0), ("--end", args.end, lambda v: v == -1 or v >= args.start),
               ("--batch-size", args.batch_size, lambda v: v >= 1),
               ("--bab-timeout", getattr(args, "bab_timeout", None), lambda v: v > 0),
               ("--timeout", getattr(args, "timeout", None), lambda v: v > 0)]
    numbers += [(f"--{n}-coeff", getattr(args, f"{n}_coeff"), lambda v: 0 <= v <= 1)
                for n in ("ccibp", "mtlibp", "expibp", "sabr")]
    for flag, value, ok in numbers:
        if value is not None and not (math.isfinite(value) and ok(value)):
            raise ValueError(f"{flag} {value} is out of range")


def output_path(args: argparse.Namespace, what: str, split: str, eps: float) -> Path:
    """``--out`` or ``<checkpoint stem>_<what>_<split>_eps<eps>.json`` beside the checkpoint, checked writable."""
    from torchcert.verify.run import check_writable

    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.parent / f"{ckpt.stem}_{what}_{split}_eps{eps:g}.json"
    check_writable(out)
    return out


def print_and_save(values: dict, out: Path, header: dict) -> None:
    """Print the values (first: they must not be lost to a failed write), then save them as JSON."""
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"{key.ljust(width)}  {value:.6f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    try:
        out.write_text(json.dumps({**header, **values}, indent=2) + "\n")
    except OSError as err:
        raise ValueError(f"could not save the values printed above to {out}: {err.strerror or err}") from None
    print(f"saved to {out}")


def run(args: argparse.Namespace) -> int:
    from torchcert.verify.evaluation import mean_losses
    from torchcert.verify.setup import build_setup

    check_loss_arguments(args)
    split = split_name(args)
    setup = build_setup(args, split, args.valid_share)
    out = output_path(args, "losses", split, setup.eps)
    settings = loss_settings(args, setup.config)
    means = mean_losses(setup, settings, args.start, args.end, args.batch_size, args.seed, args.bab_timeout)
    print_and_save(means, out, {"eps": setup.eps, "split": split})
    return 0
