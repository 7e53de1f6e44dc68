"""``torchcert train PRESET_OR_YAML [key=value ...] --out DIR``: train a network, writing a run folder.

Launched by ``torchrun --nproc_per_node N -m torchcert train ...`` it trains with DistributedDataParallel over the
N processes (NCCL on GPUs, gloo on CPUs); see :mod:`torchcert.train.distributed`."""
from __future__ import annotations

import argparse
import json
import os


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a certifiably robust network from a preset or YAML file",
        description="Train with a preset (see `torchcert presets`) or a YAML file, plus dotted key=value overrides. "
                    "The run folder gets config.yaml, metrics.jsonl, "
                    "ckpt_last.pt and summary.json.")
    parser.add_argument("config", metavar="PRESET_OR_YAML", help="preset name (e.g. mnist-0.1/cc-ibp) or YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-3")
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (created; must be new unless --resume)")
    parser.add_argument("--data-dir", metavar="DIR", help="dataset folder (default ./data/<dataset>)")
    parser.add_argument("--download", action="store_true",
                        help="download a missing dataset (MNIST, CIFAR-10; checksum-verified) into --data-dir")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train
    from torchcert.verify.shards import launcher

    overrides = list(args.overrides)
    if getattr(args, "threads", None) is not None:  # the command line wins over the config's run.threads
        overrides.append(f"run.threads={args.threads}")
    config = load_config(TrainConfig, args.config, overrides)
    options = dict(data_dir=args.data_dir, device=args.device, resume=args.resume, download=args.download)
    launch = launcher(os.environ)
    if launch is None or launch.world == 1:
        print(json.dumps(train(config, args.out, **options).summary, indent=2))
        return 0
    import torch.distributed as dist

    from torchcert.train.distributed import init_world
    from torchcert.train.run import resolve_device

    world = init_world(launch, resolve_device(args.device or config.run.device).type)
    try:
        result = train(config, args.out, world=world, **options)
        dist.barrier()  # every rank done with its collectives before any tears its connections down
    finally:
        dist.destroy_process_group()
    if world.main:
        print(json.dumps(result.summary, indent=2))
    return 0
