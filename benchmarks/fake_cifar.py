"""Write CIFAR-shaped random data in CIFAR-10's own batch layout, for timing training where the real set is absent.

    python benchmarks/fake_cifar.py /tmp/fake-cifar [--per-batch 2000]
    torchcert train cifar10-8_255/cc-ibp --data-dir /tmp/fake-cifar --out runs/cnn7-random run.epochs=2

Images are uniform uint8 and labels uniform in 0..9, so accuracies are chance: this measures speed and exercises
the code path (CNN7, augmentation, CC-IBP), nothing else. Files: ``cifar-10-batches-py/data_batch_1..5`` and
``test_batch``, pickled dicts with ``b"data"`` (N, 3072) uint8 and ``b"labels"`` (a list of ints).
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np


def write_fake_cifar(root: Path, per_batch: int, seed: int = 0) -> Path:
    """Five training batches and one test batch of ``per_batch`` random images each; returns the batch folder."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        with open(folder / name, "wb") as stream:
            pickle.dump(entry, stream, protocol=2)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--per-batch", type=int, default=2000, help="images per batch file (the real set: 10000)")
    args = parser.parse_args()
    print(write_fake_cifar(Path(args.root), args.per_batch))


if __name__ == "__main__":
    main()
