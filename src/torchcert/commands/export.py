"""``torchcert export``: a checkpoint as ONNX (normalisation included, so the file takes pixels in [0, 1]) and,
optionally, per-sample L∞ robustness properties as VNN-LIB with an ``instances.csv``, ready for any VNN-COMP tool
and for ``torchcert vnncomp``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from torchcert.verify.setup import add_model_arguments

    parser = subparsers.add_parser(
        "export", help="write a checkpoint as ONNX and its robustness properties as VNN-LIB",
        description="The network (with its input normalisation) as ONNX; with --vnnlib-dir, one VNN-LIB property "
                    "per test sample (the L-inf ball of radius --eps around the pixels, clipped to [0, 1]; the "
                    "counterexample: another class scores at least the label's) and an instances.csv, so that "
                    "`torchcert vnncomp DIR` or any VNN-COMP tool can run them.")
    add_model_arguments(parser)
    parser.add_argument("--onnx", metavar="FILE", help="ONNX file (default: model.onnx in --vnnlib-dir, else "
                                                       "beside the checkpoint)")
    parser.add_argument("--vnnlib-dir", metavar="DIR", help="write properties and instances.csv here")
    parser.add_argument("--samples", type=int, default=10, help="number of test samples (default 10)")
    parser.add_argument("--start", type=int, default=0, help="first test sample index")
    parser.add_argument("--timeout", type=float, default=60.0, help="timeout written in instances.csv (seconds)")
    parser.set_defaults(run=run)


def _onnx_path(args: argparse.Namespace) -> Path:
    if args.onnx:
        return Path(args.onnx)
    if args.vnnlib_dir:
        return Path(args.vnnlib_dir) / "model.onnx"
    return Path(args.checkpoint).with_suffix(".onnx")


def run(args: argparse.Namespace) -> int:
    import torch

    from torchcert.io.onnx_export import export_onnx
    from torchcert.io.vnnlib import robustness_property
    from torchcert.verify.setup import build_setup

    if args.samples < 0 or args.start < 0:
        raise ValueError("--samples and --start must be >= 0")
    setup = build_setup(args)
    info = setup.info
    onnx_path = _onnx_path(args)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(setup.model, (info.in_ch, info.in_dim, info.in_dim), onnx_path, info.mean, info.std)
    print(f"wrote {onnx_path}")
    if not args.vnnlib_dir:
        return 0
    folder = Path(args.vnnlib_dir)
    folder.mkdir(parents=True, exist_ok=True)
    end = min(args.start + args.samples, len(setup.split.labels))
    rows = []
    net_ref = os.path.relpath(onnx_path.resolve(), folder.resolve())
    for idx in range(args.start, end):
        pixels = setup.split.images[idx:idx + 1].to(torch.float64) / 255.0
        lower, upper = (pixels - setup.eps).clamp(0.0, 1.0), (pixels + setup.eps).clamp(0.0, 1.0)
        label = int(setup.split.labels[idx])
        name = f"sample_{idx}_eps_{setup.eps:g}.vnnlib"
        comment = f"torchcert export: {info.name} test sample {idx}, label {label}, L-inf eps {setup.eps:g} (pixels)"
        (folder / name).write_text(robustness_property(lower, upper, label, info.num_class, comment))
        rows.append(f"{net_ref},{name},{args.timeout:g}")
    (folder / "instances.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(rows)} properties and instances.csv to {folder}")
    return 0
