#!/usr/bin/env bash
# Usage: launch/tpu/run.sh --name NAME --zone ZONE --config FILE.py[:arg] --workdir gs://DIR
#            [options] [-- --config.k=v ...]
#
# Runs `python -m lib.main` on every worker of a TPU VM or pod slice at once (set up by
# setup.sh); the processes find each other on their own. The logs stream back through ssh, and
# the exit code is the first non-zero one of the workers (see launch/local.sh for their
# meaning). Re-running the same command resumes the run. A pod slice needs a gs:// workdir,
# which every worker reads; on one TPU VM a local one also works but dies with the VM.
#
# If the ssh session drops (network, a laptop asleep; also Ctrl-C here), ssh exits (255) but
# nothing tells the workers' processes (no terminal, so no SIGHUP): they go on unseen, holding
# the TPU, until a write to their closed output fails (process 0's next progress line: a crash
# without a checkpoint; its peers then stop too). So this script first ends whatever lib.main
# an earlier run left on the workers: SIGTERM (a live run saves a checkpoint and exits 75),
# SIGKILL after 2 minutes. That first command alone (see --dry-run) stops a run cleanly.
#
# Options:
#   --name NAME              TPU name
#   --zone ZONE              its zone
#   --config FILE.py[:arg]   experiment config, a path inside this repository
#   --workdir gs://DIR       run directory
#   --data_dir gs://DIR      TFDS data directory (--config.data.data_dir)
#   --project P              Google Cloud project (default: gcloud's configured one)
#   --dry-run                print the commands instead of running them
#   -h, --help               this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

name="" zone="" config="" workdir="" data_dir="" project="" overrides=()
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --config) need_value "$@"; config=$2; shift 2 ;;
    --workdir) need_value "$@"; workdir=$2; shift 2 ;;
    --data_dir) need_value "$@"; data_dir=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required name zone config workdir
where=(--zone="$zone" ${project:+"--project=$project"})

# [p]: the pattern does not match the command line of the shell that runs these commands.
# shellcheck disable=SC2016  # $(seq 60) is for the workers' shell
leftovers='pkill -f "[p]ython -m lib.main" || exit 0; for _ in $(seq 60); do sleep 2;'
leftovers+=' pgrep -f "[p]ython -m lib.main" >/dev/null || exit 0; done;'
leftovers+=' pkill -9 -f "[p]ython -m lib.main"; true'
run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all --command "$leftovers"

train=$(quote .venv/bin/python -m lib.main "--config=$config" "--workdir=$workdir" \
  ${data_dir:+"--config.data.data_dir=$data_dir"} "${overrides[@]}")
run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all \
  --command "cd $TPU_REPO_DIR && $train"
