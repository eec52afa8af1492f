#!/usr/bin/env bash
# Usage: launch/tpu/create.sh --name NAME --zone ZONE --accelerator_type TYPE [options]
#
# Creates a Cloud TPU VM or pod slice (TYPE: v4-8, v4-32, v5litepod-16, v5p-8, v6e-8, ...) and
# returns once it is ready. Then: setup.sh copies this repository to it, run.sh trains.
#
# Options:
#   --name NAME              TPU name
#   --zone ZONE              e.g. us-central2-b
#   --accelerator_type TYPE  TPU type and size
#   --runtime_version V      TPU software version; default from TYPE: v6e: v2-alpha-tpuv6e,
#                            v5p: v2-alpha-tpuv5, v5litepod: v2-alpha-tpuv5-lite, else
#                            tpu-ubuntu2204-base
#   --project P              Google Cloud project (default: gcloud's configured one)
#   --spot                   Spot capacity: cheaper, preempted at any time
#   --preemptible            preemptible capacity (TPU v4 and older; at most 24 h)
#   --queued                 request through a queued resource, which waits until capacity is
#                            free (with --spot: Spot capacity); delete it with delete.sh --queued
#   --dry-run                print the commands instead of running them
#   -h, --help               this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

name="" zone="" accelerator_type="" runtime_version="" project="" spot="" preemptible="" queued=""
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --accelerator_type) need_value "$@"; accelerator_type=$2; shift 2 ;;
    --runtime_version) need_value "$@"; runtime_version=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --spot) spot=1; shift ;;
    --preemptible) preemptible=1; shift ;;
    --queued) queued=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required name zone accelerator_type
[[ -z $preemptible || -z $spot$queued ]] ||
  usage_error "--preemptible excludes --spot and --queued"
if [[ -z $runtime_version ]]; then
  case $accelerator_type in
    v6e-*) runtime_version=v2-alpha-tpuv6e ;;
    v5p-*) runtime_version=v2-alpha-tpuv5 ;;
    v5litepod-*) runtime_version=v2-alpha-tpuv5-lite ;;
    *) runtime_version=tpu-ubuntu2204-base ;;
  esac
fi
where=(--zone="$zone" ${project:+"--project=$project"})

if [[ -z $queued ]]; then
  run gcloud compute tpus tpu-vm create "$name" "${where[@]}" \
    --accelerator-type="$accelerator_type" --version="$runtime_version" \
    ${spot:+--spot} ${preemptible:+--preemptible}
  exit 0
fi

run gcloud compute tpus queued-resources create "$name" --node-id="$name" "${where[@]}" \
  --accelerator-type="$accelerator_type" --runtime-version="$runtime_version" ${spot:+--spot}
# The request returns at once; the TPU exists when the queued resource is ACTIVE.
describe=(gcloud compute tpus queued-resources describe "$name" "${where[@]}"
  --format='value(state.state)')
if ((DRY_RUN)); then
  quote "${describe[@]}"
  exit 0
fi
until state=$("${describe[@]}") && [[ $state == ACTIVE ]]; do
  case $state in
    FAILED | SUSPENDED)
      die "queued resource $name is $state (gcloud compute tpus queued-resources describe" \
        "$name ${where[*]} says why); remove it with launch/tpu/delete.sh --queued" ;;
  esac
  echo "queued resource $name: ${state:-unknown}; checking again in 60 s" >&2
  sleep 60
done
