#!/usr/bin/env bash
# Usage: launch/local.sh --config FILE.py[:arg] --workdir DIR [options] [-- --config.k=v ...]
#
# Runs `python -m lib.main` on this machine and relaunches it until it finishes: re-running a
# run resumes it from its last checkpoint. Exit 0 (finished, DIR/results.json written) ends the
# loop, as do 2 (bad input) and 3 (non-finite loss), which a rerun would only repeat; 75
# (preempted: SIGTERM, checkpoint saved) and any other failure relaunch the same command.
# Ctrl-C stops the loop once the run has exited. $PYTHON (default: python) runs lib.main.
#
# Options:
#   --config FILE.py[:arg]   experiment config, as for lib.main
#   --workdir DIR            run directory (local or gs://)
#   --max_restarts N         relaunches before giving up (default 10)
#   --restart_delay S        seconds to wait before a relaunch, so that a dead run's devices
#                            and ports are free again (default 10)
#   --dry-run                print the command instead of running it
#   -h, --help               this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

config="" workdir="" max_restarts=10 restart_delay=10 overrides=()
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --config) need_value "$@"; config=$2; shift 2 ;;
    --workdir) need_value "$@"; workdir=$2; shift 2 ;;
    --max_restarts) need_value "$@"; max_restarts=$2; shift 2 ;;
    --restart_delay) need_value "$@"; restart_delay=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required config workdir
[[ $max_restarts =~ ^[0-9]+$ ]] || usage_error "--max_restarts must be a whole number"
[[ $restart_delay =~ ^[0-9]+$ ]] || usage_error "--restart_delay must be a whole number"

cmd=("$PYTHON" -m lib.main "--config=$config" "--workdir=$workdir" "${overrides[@]}")
if ((DRY_RUN)); then
  quote "${cmd[@]}"
  exit 0
fi

# Bash runs the trap once the foreground run has exited, so Ctrl-C (which reaches the run too)
# stops the loop instead of looking like a crash.
stop=0
trap 'stop=1' INT TERM
for ((restart = 1; ; restart++)); do
  code=0
  "${cmd[@]}" || code=$?
  case $code in
    0 | 2 | 3) exit "$code" ;;
    75) why="preempted" ;;
    *) why="failed" ;;
  esac
  ((!stop)) || exit "$code"
  if ((restart > max_restarts)); then
    echo "error: the run $why (exit $code) after $max_restarts restarts; giving up" >&2
    exit "$code"
  fi
  echo "local.sh: the run $why (exit $code); restart $restart of $max_restarts" \
    "in ${restart_delay}s" >&2
  sleep "$restart_delay"
done
