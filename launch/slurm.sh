#!/usr/bin/env bash
# Several GPU nodes under SLURM: submit with sbatch (or run inside salloc) from the repository
# root; it starts one process per node (driving all of its GPUs) or one per GPU with srun.
#
#   sbatch --nodes=N --gpus-per-node=G --exclusive launch/slurm.sh [flags] <config> \
#       [--config.key=value ...]
#
#   --per=node|gpu        one process per node (default) or one per GPU
#   --gpus-per-node=G     with --per=gpu; default: $SLURM_GPUS_ON_NODE (or $SLURM_GPUS_PER_NODE)
#   --port=P              the coordinator's port; default: JAX's own choice, 61440 + job id % 4096
#   --dry-run             print the srun command and what each process runs; run nothing
#   --help                this text
#
# Process 0 is the coordinator, on the allocation's first node; process count and ids come
# from the SLURM allocation and are passed as --config.distributed.* overrides. One process
# exiting non-zero stops the others (srun --kill-on-bad-exit). The workdir must be on a file
# system every node sees. $PYTHON picks the python (default: python). Example:
#   sbatch --nodes=2 --gpus-per-node=8 --exclusive launch/slurm.sh \
#       configs/paper.py:codellama7b,gsm8k,program --config.workdir=/shared/runs/cl7b
set -euo pipefail
launch_dir=$(dirname "$0")
[[ -f $launch_dir/common.sh ]] || launch_dir=${SLURM_SUBMIT_DIR:-.}/launch  # sbatch runs a copy
source "$launch_dir/common.sh"

LAUNCHER_OPTIONS="per gpus-per-node port"
parse_launcher_args "$@"
[[ -n ${SLURM_JOB_NODELIST:-} && -n ${SLURM_JOB_ID:-} ]] ||
  usage_error "not inside a SLURM allocation (SLURM_JOB_NODELIST is unset): use sbatch or salloc"
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodes=${#hosts[@]}
((nodes > 0)) || usage_error "scontrol show hostnames $SLURM_JOB_NODELIST named no node"
port=${OPT_port:-$((61440 + SLURM_JOB_ID % 4096))}
require_count port "$port"

case "${OPT_per:-node}" in
  node)
    per_node=1
    # JAX's SLURM detection would give each process only GPU $SLURM_LOCALID (0 here): unset, it
    # keeps every GPU of the node, and the explicit flags below replace the detection.
    task_setup='unset SLURM_LOCALID; ' ;;
  gpu)
    per_node=${OPT_gpus_per_node:-${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}}
    per_node=${per_node##*:}  # SLURM_GPUS_PER_NODE may read "a100:8"
    [[ -n $per_node ]] || usage_error "--per=gpu needs --gpus-per-node=G (SLURM gave no GPU count)"
    require_count gpus-per-node "$per_node"
    # JAX's SLURM detection gives process $SLURM_LOCALID of a node its GPU $SLURM_LOCALID.
    task_setup='' ;;
  *) usage_error "--per=${OPT_per} must be node or gpu" ;;
esac
processes=$((nodes * per_node))
distributed_flags "${hosts[0]}:$port" "$processes"
reft_command "${PYTHON:-python}" "${DISTRIBUTED_FLAGS[@]}"
srun_command=(srun "--nodes=$nodes" "--ntasks=$processes" "--ntasks-per-node=$per_node"
              --kill-on-bad-exit=1 bash -c
              "${task_setup}exec \"\$@\" --config.distributed.process_id=\"\$SLURM_PROCID\""
              reft_jax "${REFT_COMMAND[@]}")

if ((DRY_RUN)); then
  echo "launch: $(shell_quote "${srun_command[@]}")"
  for ((id = 0; id < processes; id++)); do
    where=${hosts[id / per_node]}
    [[ ${OPT_per:-node} == node ]] || where+=", GPU $((id % per_node))"
    show_process "$id" "$where" "${REFT_COMMAND[@]}" "--config.distributed.process_id=$id"
  done
  exit 0
fi
exec "${srun_command[@]}"
