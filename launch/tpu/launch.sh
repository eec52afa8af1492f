#!/usr/bin/env bash
# Usage: launch/tpu/launch.sh --name NAME --zone ZONE --accelerator_type TYPE
#            --config FILE.py[:arg] --workdir gs://DIR [options] [-- --config.k=v ...]
#
# One run on a TPU VM or pod slice it manages, until the run finishes: create.sh, setup.sh and
# run.sh; whenever a run ends without gs://DIR/results.json, exit 2 or 3 stops (a rerun would
# only repeat it), a preempted or vanished TPU is deleted, recreated and set up again, and on a
# TPU that is still READY the run is started again (after a failure --max_restarts times at
# most; exit 75, a preemption, does not count). Every rerun resumes from the run's last
# checkpoint; run.sh first ends what an earlier run left on the workers. At the end the TPU is
# deleted, unless --keep. NAME must not exist yet; to go on with an existing TPU use run.sh.
# Keep this script alive (e.g. in tmux): the run's output streams through its ssh sessions. If
# they drop, nothing tells the workers' processes: they go on unseen until their next output
# fails (a crash, no checkpoint) or the rerun's run.sh stops them (SIGTERM: a checkpoint).
# Ctrl-C ends the ssh sessions and then this script, which deletes the TPU unless --keep; a
# SIGTERM sent to this script alone takes effect only when the run's ssh ends.
#
# Options:
#   --name, --zone, --accelerator_type, --runtime_version, --project, --spot, --preemptible,
#   --queued                 as for create.sh
#   --config FILE.py[:arg]   experiment config, a path inside this repository
#   --workdir gs://DIR       run directory
#   --data_dir gs://DIR      TFDS data directory (--config.data.data_dir)
#   --max_restarts N         reruns after a failure on a READY TPU before giving up (default
#                            3); preemptions (exit 75, a preempted TPU) do not count
#   --keep                   do not delete the TPU at the end
#   --dry-run                print the commands of one cycle instead of running them
#   -h, --help               this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
here=$(dirname "$0")

name="" zone="" accelerator_type="" runtime_version="" project="" capacity=() queued=""
config="" workdir="" data_dir="" max_restarts=3 keep="" overrides=()
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --accelerator_type) need_value "$@"; accelerator_type=$2; shift 2 ;;
    --runtime_version) need_value "$@"; runtime_version=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --spot | --preemptible) capacity+=("$1"); shift ;;
    --queued) capacity+=("$1"); queued=1; shift ;;
    --config) need_value "$@"; config=$2; shift 2 ;;
    --workdir) need_value "$@"; workdir=$2; shift 2 ;;
    --data_dir) need_value "$@"; data_dir=$2; shift 2 ;;
    --max_restarts) need_value "$@"; max_restarts=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required name zone accelerator_type config workdir
[[ $workdir == gs://* ]] ||
  usage_error "--workdir must be gs://...: a recreated TPU starts with empty disks"
[[ $max_restarts =~ ^[0-9]+$ ]] || usage_error "--max_restarts must be a whole number"

tpu=(--name "$name" --zone "$zone" ${project:+--project "$project"})
if ((DRY_RUN)); then tpu+=(--dry-run); fi
create=("$here/create.sh" "${tpu[@]}" --accelerator_type "$accelerator_type"
  ${runtime_version:+--runtime_version "$runtime_version"} "${capacity[@]}")
delete=("$here/delete.sh" "${tpu[@]}" ${queued:+--queued})
setup=("$here/setup.sh" "${tpu[@]}")
train=("$here/run.sh" "${tpu[@]}" --config "$config" --workdir "$workdir"
  ${data_dir:+--data_dir "$data_dir"} -- "${overrides[@]}")
results=(gcloud storage ls "$workdir/results.json")

"${create[@]}"
# Only a TPU this script created is deleted at exit.
if [[ -z $keep ]]; then trap '"${delete[@]}"' EXIT; fi
"${setup[@]}"

# Bash runs the trap once the foreground run has exited, so Ctrl-C ends the loop.
stop=0
trap 'stop=1' INT TERM
restarts=0
while true; do
  code=0
  "${train[@]}" || code=$?
  ((!stop)) || exit "$code"
  if ((DRY_RUN)); then
    quote "${results[@]}"
    exit 0
  fi
  if "${results[@]}" >/dev/null 2>&1; then
    echo "launch.sh: finished; results in $workdir/results.json" >&2
    exit 0
  fi
  case $code in 2 | 3) exit "$code" ;; esac
  state=$(gcloud compute tpus tpu-vm describe "$name" --zone="$zone" \
    ${project:+"--project=$project"} --format='value(state)' 2>/dev/null) || state=""
  if [[ $state == READY ]] && ((code == 75)); then
    echo "launch.sh: the run was preempted (exit 75); TPU $name is READY; rerunning" >&2
  elif [[ $state == READY ]]; then
    if ((restarts++ >= max_restarts)); then
      echo "error: the run failed (exit $code) on a READY TPU after $max_restarts restarts;" \
        "giving up" >&2
      exit "$code"
    fi
    echo "launch.sh: the run failed (exit $code); TPU $name is READY; restart" \
      "$restarts of $max_restarts" >&2
  else
    echo "launch.sh: the run stopped (exit $code); TPU $name is ${state:-gone};" \
      "recreating it" >&2
    "${delete[@]}" || true
    "${create[@]}"
    "${setup[@]}"
  fi
done
