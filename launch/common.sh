# Sourced by the launchers in this folder: their flags, the reft_jax command line, --dry-run.
#
# A launcher sets LAUNCHER_OPTIONS (its --name=value flags) and calls `parse_launcher_args "$@"`
# (tpu_pod.sh calls `parse_launcher_flags` first): flags come first, then the config
# (configs/x.py or configs/paper.py:<cell>), then --config.key=value overrides, passed through
# untouched. --name=value lands in OPT_<name> (dashes as underscores); --dry-run sets
# DRY_RUN=1; --help prints the launcher's leading comment.

LAUNCHER_OPTIONS=""
DRY_RUN=0
CONFIG=""
OVERRIDES=()

print_usage() {  # the launcher's leading comment block, without the "# "
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
}

usage_error() {
  echo "error: $1" >&2
  echo >&2
  print_usage >&2
  exit 2
}

parse_launcher_flags() {  # the leading --flags; what follows them lands in ARGS
  while [[ $# -gt 0 && $1 == --* && $1 != --config* ]]; do
    local flag=$1 name value
    shift
    case "$flag" in
      --help | -h) print_usage; exit 0 ;;
      --dry-run) DRY_RUN=1; continue ;;
    esac
    [[ $flag == --*=* ]] || usage_error "$flag needs a value: ${flag}=..."
    name=${flag%%=*}; name=${name#--}; value=${flag#*=}
    [[ " $LAUNCHER_OPTIONS " == *" $name "* ]] || usage_error "unknown flag --$name (this \
launcher takes: --help --dry-run$(printf ' --%s=' $LAUNCHER_OPTIONS))"
    printf -v "OPT_${name//-/_}" '%s' "$value"
  done
  ARGS=("$@")
}

parse_launcher_args() {  # flags, then the config, then only --config.key=value overrides
  parse_launcher_flags "$@"
  set -- "${ARGS[@]}"
  [[ $# -ge 1 && ($1 != --* || $1 == --config=*) ]] ||
    usage_error "a config is required, e.g. configs/paper.py:codellama7b,gsm8k,program"
  CONFIG=${1#--config=}
  shift
  for arg in "$@"; do
    [[ $arg == --config.* ]] ||
      usage_error "after the config only --config.key=value overrides go; got: $arg"
  done
  OVERRIDES=("$@")
}

require_count() {  # require_count <flag> <value>: a positive whole number
  [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "--$1=$2 must be a positive whole number"
}

# The command every process runs: reft_command <python> [flags ...]; the user's overrides
# follow the given flags, so they win (a launcher appends only the process id after them).
reft_command() {
  REFT_COMMAND=("$1" -m reft_jax.main "--config=$CONFIG" "${@:2}" "${OVERRIDES[@]}")
}

distributed_flags() {  # distributed_flags <coordinator host:port> <process count>
  DISTRIBUTED_FLAGS=(--config.distributed.enabled=True "--config.distributed.coordinator_address=$1"
                     "--config.distributed.num_processes=$2")
}

show_process() {  # show_process <process id> <where> <command words ...>: one --dry-run line
  printf 'process %s (%s): %s\n' "$1" "$2" "$(shell_quote "${@:3}")"
}

shell_quote() {  # the arguments as one line a POSIX shell reads back into the same words
  local out=() arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+=("$arg")
    else
      out+=("'${arg//\'/\'\\\'\'}'")
    fi
  done
  printf '%s\n' "${out[*]}"
}
