#!/usr/bin/env bash
# The GPU benchmarks in one call of the device tool, on random weights of published
# architectures (the machine gets neither ../shared nor the network). Here, once:
#   python -m benchmarks.device_inputs            # writes .device/ (ignored by git)
# then one device call with carry [".device"] and a timeout that leaves room for a rerun:
#   bash benchmarks/device_suite.sh .device
# Each benchmark's output goes to $OUT/<name>.txt (and the call's output); a benchmark that
# runs past its limit (LIMIT_S, default 170 s) is stopped and the next one runs.
set -uo pipefail
dir=${1:-.device}
out=${OUT:-/tmp/device_suite}
limit=${LIMIT_S:-170}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$dir"/wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" REFT_SHARED="$dir/shared" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

bench() {
  local name=$1; shift
  echo "== $name $*"
  timeout "$limit" python3 -m "benchmarks.$name" "$@" 2>&1 | grep -v "it/s]" | tee "$out/$name.txt"
}
bench bench_ppo --model "$dir/models/qwen2.5-0.5b" --dtype bfloat16
bench bench_sft --model "$dir/models/qwen2.5-0.5b" --dtype bfloat16 --batch 8 --length 1024
bench bench_sampler --model "$dir/models/smollm2-135m"
