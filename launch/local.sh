#!/usr/bin/env bash
# Usage: launch/local.sh --config FILE.py[:arg] --workdir DIR [options] [-- --config.k=v ...]
#
# Runs `python -m lib.main` on this machine and relaunches it until it finishes: re-running a
# run resumes it from its last checkpoint. Exit 0 (finished, DIR/results.json written) ends the
# loop, as do 2 (bad input) and 3 (non-finite loss), which a rerun would only repeat; 75
# (preempted: SIGTERM, checkpoint saved) and any other failure relaunch the same command.
# SIGTERM or Ctrl-C (SIGINT) to this script ends the loop: it sends SIGTERM to the run, which
# saves a checkpoint and exits 75, and then exits with the run's exit code instead of
# relaunching (during the wait before a relaunch: at once). $PYTHON (default: python) runs
# lib.main.
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

# The run goes to the background and the script waits for it, because bash runs a trap only
# once the foreground command has exited: a SIGTERM or SIGINT for this script would otherwise
# wait for the end of the run. The run gets SIGTERM for both: lib.main checkpoints on SIGTERM,
# and a background command of a script ignores SIGINT (Ctrl-C in a terminal reaches it too).
stop=0 signalled=0 child=""
on_signal() {
  stop=1 signalled=1
  if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null || true; fi
}
trap on_signal INT TERM
for ((restart = 1; ; restart++)); do
  "${cmd[@]}" &
  child=$!
  # A signal that came before child was set did not reach the run.
  if ((stop)); then kill -TERM "$child" 2>/dev/null || true; fi
  # wait returns at once (> 128) when a trapped signal arrives, while the run goes on
  # (checkpointing): wait again until the run has exited.
  while true; do
    signalled=0 code=0
    wait "$child" || code=$?
    ((signalled && code > 128)) || break
  done
  child=""
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
  # In the background too, so that a signal ends the wait at once.
  sleep "$restart_delay" &
  pause=$!
  wait "$pause" || true
  kill "$pause" 2>/dev/null || true
  ((!stop)) || exit "$code"
done
