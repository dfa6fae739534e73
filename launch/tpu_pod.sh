#!/usr/bin/env bash
# Run reft_jax on every host of a Cloud TPU VM pod slice.
#
#   launch/tpu_pod.sh setup <tpu-name> <zone>
#       copy this checkout (its committed files) to ~/reft_jax on every host and install it
#   launch/tpu_pod.sh run <tpu-name> <zone> <config> [--config.key=value ...]
#       start the same command on every host; JAX finds the pod's hosts by itself
#
# Orbax checkpoints are written by all hosts together, so config.workdir must be a folder that
# every host sees (a Filestore/NFS share or a gcsfuse mount), e.g. --config.workdir=/mnt/runs/gsm8k.
# Set the mesh to the slice, e.g. --config.mesh.data=1 --config.mesh.fsdp=-1: ZeRO-3 over all chips.
set -euo pipefail

usage() { sed -n '2,11p' "$0" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
action=$1 tpu=$2 zone=$3
shift 3
ssh_all() { gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "$1"; }

case "$action" in
  setup)
    archive=$(mktemp --suffix=.tar.gz)
    trap 'rm -f "$archive"' EXIT
    git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
    gcloud compute tpus tpu-vm scp "$archive" "$tpu:~/reft_jax.tar.gz" --zone "$zone" --worker=all
    ssh_all 'rm -rf ~/reft_jax && mkdir ~/reft_jax && tar -xzf ~/reft_jax.tar.gz -C ~/reft_jax &&
             cd ~/reft_jax && pip install -q -r requirements.txt "jax[tpu]" -e .'
    ;;
  run)
    [[ $# -ge 1 ]] || usage
    config=$1
    shift
    printf -v overrides ' %q' "$@"
    ssh_all "cd ~/reft_jax && python -m reft_jax.main --config=$config --config.distributed.enabled=True$overrides"
    ;;
  *) usage ;;
esac
