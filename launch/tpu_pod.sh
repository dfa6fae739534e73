#!/usr/bin/env bash
# Run reft_jax on every host of a Cloud TPU VM pod slice.
#
#   launch/tpu_pod.sh [--dry-run] setup <tpu-name> <zone>
#       copy this checkout (its committed files) to ~/reft_jax on every host and install it
#   launch/tpu_pod.sh [--dry-run] run <tpu-name> <zone> <config> [--config.key=value ...]
#       start the same command on every host; JAX finds the pod's hosts and numbers them
#
#   --dry-run   print the gcloud commands and what every host runs; run nothing
#   --help      this text
#
# Orbax checkpoints are written by all hosts together, so config.workdir must be a folder that
# every host sees (a Filestore/NFS share or a gcsfuse mount), e.g. --config.workdir=/mnt/runs/gsm8k.
# Set the mesh to the slice, e.g. --config.mesh.data=1 --config.mesh.fsdp=-1: ZeRO-3 over all chips.
# Example:
#   launch/tpu_pod.sh run my-v4-32 us-central2-b configs/paper.py:codellama7b,gsm8k,program \
#       --config.workdir=/mnt/runs/cl7b
set -euo pipefail
source "$(dirname "$0")/common.sh"

parse_launcher_flags "$@"
set -- "${ARGS[@]}"
[[ $# -ge 3 ]] || usage_error "an action (setup or run), a TPU name and a zone are required"
action=$1 tpu=$2 zone=$3
shift 3

run_or_show() {  # run the command, or with --dry-run print it
  if ((DRY_RUN)); then echo "launch: $(shell_quote "$@")"; else "$@"; fi
}
ssh_all() {
  run_or_show gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "$1"
}

case "$action" in
  setup)
    [[ $# -eq 0 ]] || usage_error "setup takes no more arguments; got: $*"
    if ((DRY_RUN)); then archive='<temporary file>.tar.gz'; else
      archive=$(mktemp --suffix=.tar.gz)
      trap 'rm -f "$archive"' EXIT
    fi
    run_or_show git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
    run_or_show gcloud compute tpus tpu-vm scp "$archive" "$tpu:~/reft_jax.tar.gz" --zone "$zone" \
      --worker=all
    unpack='rm -rf ~/reft_jax && mkdir ~/reft_jax && tar -xzf ~/reft_jax.tar.gz -C ~/reft_jax'
    ssh_all "$unpack"' && cd ~/reft_jax && pip install -q -r requirements.txt "jax[tpu]" -e .'
    ;;
  run)
    parse_launcher_args "$@"
    reft_command python --config.distributed.enabled=True
    remote="cd ~/reft_jax && $(shell_quote "${REFT_COMMAND[@]}")"
    if ((DRY_RUN)); then echo "every host of $tpu (process ids from JAX): $remote"; fi
    ssh_all "$remote"
    ;;
  *) usage_error "unknown action $action: setup or run" ;;
esac
