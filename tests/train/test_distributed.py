"""Training under torchrun (gloo, two CPU processes): the weights of one process, and resumption after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")  # the digits data set

#: a BatchNorm network (so sync_bn matters), two micro-batches per step (no_sync), the regulariser, one-step attack
#: and IBP bounds of the digits preset, PGD-20 in the evaluation
OVERRIDES = ["model.name=cnn_7layer_bn2", "model.options.width=4", "model.options.linear_size=16",
             "data.train_limit=640", "data.test_limit=64", "run.epochs=3", "eps.start=1", "eps.length=2",
             "optim.name=sgd", "optim.lr=0.05", "optim.grad_acc_steps=2", "run.test_interval=3", "run.progress=false",
             "run.threads=1"]


def _torchrun(out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "torchcert", "train", "digits/cc-ibp", *OVERRIDES, "--out", str(out), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _weights(run: Path) -> dict:
    return torch.load(run / "ckpt_last.pt", weights_only=True)["state_dict"]


def _assert_close(a: dict, b: dict) -> None:
    """Float tolerance: 30 SGD steps in float32 amplify the rounding of the per-rank sums (about 1e-7 after one
    step, 2e-5 relative at the end when measured); per-rank BatchNorm statistics instead (run.sync_bn=false) end
    about 0.3 apart on this run."""
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            scale = max(1.0, float(a[key].abs().max()))
            assert float((a[key] - b[key]).abs().max()) <= 5e-4 * scale, key
        else:
            assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train

    out = tmp_path_factory.mktemp("one") / "run"
    threads = torch.get_num_threads()
    try:
        train(load_config(TrainConfig, "digits/cc-ibp", OVERRIDES), out, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return out


def test_two_processes_train_the_weights_of_one(one_process, tmp_path):
    out = tmp_path / "two"
    proc = _torchrun(out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    _assert_close(_weights(out), _weights(one_process))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (one_process / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [m["step"] for m in reference] == [10, 20, 30]
    for ours, theirs in zip(metrics, reference):  # metrics reduced over the ranks: those of the whole batch
        for key in ("nat_acc", "adv_acc", "ver_acc"):
            assert abs(ours["train"][key] - theirs["train"][key]) <= 0.02, key
    assert json.loads(stdout[stdout.index("{"):])["test_samples"] == 64  # rank 0 alone printed the summary


def _worker_of_rank(parent: int, rank: int) -> int:
    """The pid of the torchrun worker with RANK=rank (a child of the torchrun process ``parent``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise LookupError(f"no worker of rank {rank} under pid {parent}")


def test_a_run_killed_on_one_rank_resumes(one_process, tmp_path):
    out = tmp_path / "killed"
    proc = _torchrun(out)
    deadline = time.monotonic() + 240
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(_worker_of_rank(proc.pid, 1), signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun stops the other rank and fails
    done = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert done and done[-1] < 3
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train

    threads = torch.get_num_threads()
    try:  # resumed by one process: a checkpoint does not depend on the number of processes
        train(load_config(TrainConfig, "digits/cc-ibp", OVERRIDES), out, device="cpu", resume=True)
    finally:
        torch.set_num_threads(threads)
    _assert_close(_weights(out), _weights(one_process))
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
