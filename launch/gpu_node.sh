#!/usr/bin/env bash
# One machine with several NVIDIA GPUs: one process drives all of them (jax[cuda12]).
#
#   launch/gpu_node.sh [--gpus=0,1,...] [--dry-run] <config> [--config.key=value ...]
#
#   --gpus=LIST  the GPUs to use (CUDA_VISIBLE_DEVICES); default: every GPU the machine has
#   --dry-run    print the command, run nothing
#   --help       this text
#
# Install once: pip install -r requirements.txt "jax[cuda12]" -e .   ($PYTHON picks the python)
# The config's mesh spreads batches and parameters over the GPUs; the paper's cells shard
# parameters and Adam moments over all of them (mesh.data=1, mesh.fsdp=-1). Example:
#   launch/gpu_node.sh configs/paper.py:codellama7b,gsm8k,program --config.workdir=/data/runs/cl7b
set -euo pipefail
source "$(dirname "$0")/common.sh"

LAUNCHER_OPTIONS="gpus"
parse_launcher_args "$@"
environment=()
if [[ -n ${OPT_gpus:-} ]]; then
  [[ $OPT_gpus =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--gpus=$OPT_gpus is not a list like 0,1,2,3"
  environment=("CUDA_VISIBLE_DEVICES=$OPT_gpus")
fi
reft_command "${PYTHON:-python}"

if ((DRY_RUN)); then
  show_process 0 "$(hostname), GPUs ${OPT_gpus:-all}" "${environment[@]}" "${REFT_COMMAND[@]}"
  exit 0
fi
exec env "${environment[@]}" "${REFT_COMMAND[@]}"
