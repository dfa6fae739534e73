#!/usr/bin/env bash
# Try a multi-host run on one machine: N processes on CPU devices, talking through a local
# coordinator exactly as hosts of a pod or nodes of a cluster do.
#
#   launch/local.sh [--processes=N] [--devices-per-process=D] [--port=P] [--dry-run]
#                   <config> [--config.key=value ...]
#
#   --processes=N            how many processes (default 2)
#   --devices-per-process=D  CPU devices each process gets (default 1)
#   --port=P                 the coordinator's port on localhost (default: a free one)
#   --dry-run                print what each process runs; run nothing
#   --help                   this text
#
# Each output line is prefixed with its process id. When one process fails, the others are
# stopped and the launcher exits with its status. Needs bash >= 5.1. $PYTHON picks the python
# (default: python). Example:
#   launch/local.sh --processes=2 configs/smollm2_svamp.py --config.stages=check
set -euo pipefail
source "$(dirname "$0")/common.sh"

LAUNCHER_OPTIONS="processes devices-per-process port"
parse_launcher_args "$@"
python=${PYTHON:-python}
processes=${OPT_processes:-2}
devices=${OPT_devices_per_process:-1}
require_count processes "$processes"
require_count devices-per-process "$devices"
free_port='import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])'
port=${OPT_port:-$("$python" -c "$free_port")}
require_count port "$port"

distributed_flags "localhost:$port" "$processes"
reft_command "$python" "${DISTRIBUTED_FLAGS[@]}"
environment=(JAX_PLATFORMS=cpu
             "XLA_FLAGS=${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$devices")

if ((DRY_RUN)); then
  for ((id = 0; id < processes; id++)); do
    show_process "$id" localhost "${environment[@]}" "${REFT_COMMAND[@]}" \
      "--config.distributed.process_id=$id"
  done
  exit 0
fi

((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501)) || usage_error "needs bash >= 5.1 (wait -n -p)"
prefix_lines() {
  local line
  while IFS= read -r line; do printf '[process %s] %s\n' "$1" "$line"; done
}
declare -A process_of  # pid -> process id
stop_all() { kill "${!process_of[@]}" 2>/dev/null || true; }
trap 'stop_all; exit 130' INT TERM
for ((id = 0; id < processes; id++)); do
  env "${environment[@]}" "${REFT_COMMAND[@]}" "--config.distributed.process_id=$id" \
    > >(prefix_lines "$id") 2>&1 &
  process_of[$!]=$id
done
while ((${#process_of[@]})); do
  status=0
  wait -n -p finished "${!process_of[@]}" || status=$?
  id=${process_of[$finished]}
  unset "process_of[$finished]"
  if ((status != 0)); then
    echo "error: process $id exited with status $status; stopping the others" >&2
    stop_all
    wait || true
    exit "$status"
  fi
done
wait  # the last output lines
