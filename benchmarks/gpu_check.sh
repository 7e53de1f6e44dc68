#!/usr/bin/env bash
# The GPU session in one script: CUDA tests, the whole suite with CUDA as default device, the two benchmarks on
# the GPU, and a short CNN7 CC-IBP training on CIFAR-shaped random data. Each step has its own time limit and
# writes its log to $OUT (default ./gpu-check), so a step that fails or runs out of time leaves the others' logs.
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
# ../shared (golden values, MNIST) is used where present; SHARED_COPY names a copy to install there first.
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
if [ -n "${SHARED_COPY:-}" ] && [ ! -e ../shared ]; then cp -r "$SHARED_COPY" ../shared || true; fi
step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, print its tail
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "=== $name: rc $? in $((SECONDS - start)) s"
  tail -n "${TAIL:-25}" "$OUT/$name.log"
}
step env 30 bash -c "nvidia-smi -L; $PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'"
step test_cuda 100 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py
# SUITE=0, VERIFY=0, CNN7=0, RESNET=0 leave a step out (a second run after the first has covered it)
if [ "${SUITE:-1}" = 1 ]; then
  TAIL=60 step suite_cuda 170 env TORCHCERT_TEST_DEVICE=cuda $PY -m pytest -q -p no:cacheprovider -n 12 \
      --timeout 100 --maxfail 1000 -rf
fi
step train_step 60 $PY benchmarks/train_step.py --device cuda
step bounds 100 $PY benchmarks/bounds.py --device cuda
if [ "${VERIFY:-1}" = 1 ] && [ -d ../shared/data/mnist ]; then
  step verify_cuda 100 $PY benchmarks/verify.py --throughput --device cuda --samples 1000 --cnn7-samples 200 \
      --data-dir ../shared/data/mnist --threads 8
fi
$PY benchmarks/fake_cifar.py /tmp/fake-cifar --per-batch 4000 >/dev/null
if [ "${CNN7:-1}" = 1 ]; then
  step cnn7_train 90 $PY -m torchcert train cifar10-8_255/cc-ibp --out /tmp/cnn7-random --data-dir /tmp/fake-cifar \
      --device cuda run.epochs=3 eps.start=1 eps.length=2 run.test_interval=3 run.progress=false
  cp /tmp/cnn7-random/metrics.jsonl "$OUT/cnn7_metrics.jsonl" 2>/dev/null || true
fi
if [ "${RESNET:-1}" = 1 ]; then
  step resnet4b_train 80 $PY -m torchcert train cifar10-2_255/cc-ibp-resnet_4b --out /tmp/r4b --data-dir \
      /tmp/fake-cifar --device cuda run.epochs=2 eps.start=1 eps.length=1 run.test_interval=2 run.progress=false \
      attack.test_steps=10
  cp /tmp/r4b/metrics.jsonl "$OUT/resnet4b_metrics.jsonl" 2>/dev/null || true
fi
