#!/usr/bin/env bash
# Usage: launch/gpu/single_host.sh --config FILE.py[:arg] --workdir DIR [options]
#            [-- --config.k=v ...]
#
# One process that trains on all GPUs of this machine (CUDA_VISIBLE_DEVICES picks a subset),
# in launch/local.sh's restart loop, with its options (below). It sets JAX_PLATFORMS=gpu
# (unless set), so that a jax without CUDA support fails at once instead of training on the
# CPU; install with `pip install -e ".[cuda]"`.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

for arg in "$@"; do
  case $arg in
    --) break ;;
    -h | --help) usage; echo; "$REPO/launch/local.sh" --help; exit 0 ;;
  esac
done
export JAX_PLATFORMS=${JAX_PLATFORMS:-gpu}
exec "$REPO/launch/local.sh" "$@"
