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
# Options:
#   --name NAME              TPU name
#   --zone ZONE              its zone
#   --config FILE.py[:arg]   experiment config, a path inside this repository
#   --workdir gs://DIR       run directory
#   --data_dir gs://DIR      TFDS data directory (--config.data.data_dir)
#   --project P              Google Cloud project (default: gcloud's configured one)
#   --dry-run                print the command instead of running it
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

train=$(quote .venv/bin/python -m lib.main "--config=$config" "--workdir=$workdir" \
  ${data_dir:+"--config.data.data_dir=$data_dir"} "${overrides[@]}")
run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all \
  --command "cd $TPU_REPO_DIR && $train"
