"""``torchcert quickstart``: CC-IBP on the 8x8 digits in about a minute on a CPU, then IBP and CROWN verified
accuracy of the trained network on the test split, printed as a small table."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict

import torch
from torch import nn

PRESET = "digits/cc-ibp"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("quickstart", help="train CC-IBP on 8x8 digits (about a minute) and verify it")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=f"overrides of the {PRESET} preset")
    parser.add_argument("--out", default="runs/quickstart", metavar="DIR", help="run folder (default runs/quickstart)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted quickstart in --out "
                                                              "(the default when --out holds a checkpoint)")
    parser.set_defaults(run=run)


def verified_accuracy(model: nn.Module, config, device: torch.device, batch_size: int = 128) -> Dict[str, float]:
    """Clean, IBP- and CROWN-verified accuracy on the test split at the target ε (eval mode); verified means
    what ``torchcert verify`` means (float64 bounds clearing the rounding tolerance, :mod:`torchcert.verify.verdict`)."""
    from torchcert.bounds import input_box, margin_matrix
    from torchcert.data import data_range, dataset_info, iterate_batches, normalize
    from torchcert.train.run import load_splits
    from torchcert.verify.verdict import bound_copy, certified

    info = dataset_info(config.data.dataset)
    _, test = load_splits(config, None, device)
    data_min, data_max = data_range(info, device)
    std = torch.tensor(info.std, device=device)
    counts = {"clean": 0, "IBP": 0, "CROWN": 0}
    model.eval()
    model64 = bound_copy(model)
    with torch.no_grad():
        for images, labels in iterate_batches(test, batch_size):
            x = normalize(images, info)
            box = input_box(x, config.eps.value, None, std, data_min, data_max)
            C = margin_matrix(labels, info.num_class).to(x.dtype)
            counts["clean"] += int((model(x).argmax(1) == labels).sum())
            counts["IBP"] += int(certified(model, box, C, "ibp", model64).sum())
            counts["CROWN"] += int(certified(model, box, C, "crown", model64).sum())
    return {k: v / len(test) for k, v in counts.items()}


def run(args: argparse.Namespace) -> int:
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import resolve_device, train

    from pathlib import Path

    from torchcert.train.checkpoint import CHECKPOINT_NAME

    config = load_config(TrainConfig, PRESET, args.overrides)
    resume = args.resume or (Path(args.out) / CHECKPOINT_NAME).exists()  # a second quickstart reuses the first
    result = train(config, args.out, device=args.device, resume=resume)
    device = resolve_device(args.device)
    accuracy = verified_accuracy(result.model, config, device)
    print(f"\nCC-IBP on 8x8 digits, eps = {config.eps.value} ({result.summary['wall_seconds']:.0f} s of training, "
          f"run folder {result.out_dir})")
    print(f"  {'test split':<20}{'accuracy':>8}")
    rows = [("clean", accuracy["clean"]), ("PGD", result.summary["pgd_acc"]),
            ("verified (IBP)", accuracy["IBP"]), ("verified (CROWN)", accuracy["CROWN"])]
    for name, value in rows:
        print(f"  {name:<20}{100 * value:>7.1f}%")
    print(f"PGD: the preset's test attack ({config.attack.test_steps} steps of {config.attack.test_step_size} eps), "
          "batched; verified: IBP, and max(IBP, CROWN), as `torchcert verify --methods ibp,crown` counts them. "
          f"`torchcert verify --checkpoint {result.checkpoint}` runs the full cascade per sample (its PGD: 40 steps "
          "of 0.035 eps by default, then alpha-CROWN and branch and bound), so its numbers can be higher.")
    write_report(result.out_dir)
    return 0


def write_report(run_dir: Path) -> None:
    """Plots and the table of the run in ``run_dir/report`` when matplotlib is installed, else how to get them."""
    from torchcert.report import build_report, default_out
    from torchcert.report.plots import INSTALL_HINT, plots_available

    if not plots_available():
        print(f"Plots and a table of this run: {INSTALL_HINT}, then `torchcert report {run_dir}`.")
        return
    report = build_report([run_dir], default_out([run_dir]))
    print(f"Report (plots, Table-1 style table): {report.out / 'report.md'}; after `torchcert verify` it also shows "
          f"the cascade: `torchcert report {run_dir}`.")
