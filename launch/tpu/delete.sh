#!/usr/bin/env bash
# Usage: launch/tpu/delete.sh --name NAME --zone ZONE [options]
#
# Deletes a TPU VM or pod slice without asking (its disks go with it; workdirs on gs:// stay).
#
# Options:
#   --name NAME   TPU name
#   --zone ZONE   its zone
#   --project P   Google Cloud project (default: gcloud's configured one)
#   --queued      it was created with create.sh --queued: delete the queued resource and its TPU
#   --dry-run     print the command instead of running it
#   -h, --help    this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

name="" zone="" project="" queued=""
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --queued) queued=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required name zone
where=(--zone="$zone" ${project:+"--project=$project"})

if [[ -n $queued ]]; then
  run gcloud compute tpus queued-resources delete "$name" "${where[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$name" "${where[@]}" --quiet
fi
