#!/usr/bin/env bash
# Usage: launch/tpu/setup.sh --name NAME --zone ZONE [options]
#
# Copies this repository (the committed HEAD, as `git archive` packs it) to every worker of a
# TPU VM or pod slice, unpacks it into ~/ier (replacing an earlier copy) and installs it with
# the [tpu] extra into ~/ier/.venv. The venv gets Python 3.12 through uv, because the TPU
# images' python3 (3.10 on Ubuntu 22.04) is older than the project supports.
#
# Options:
#   --name NAME   TPU name
#   --zone ZONE   its zone
#   --project P   Google Cloud project (default: gcloud's configured one)
#   --dry-run     print the commands instead of running them
#   -h, --help    this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

name="" zone="" project=""
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
required name zone
where=(--zone="$zone" ${project:+"--project=$project"})

if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
  echo "warning: uncommitted changes in $REPO are not copied (git archive HEAD)" >&2
fi
tarball=${TMPDIR:-/tmp}/$TPU_REPO_DIR-$name.tar.gz
dir=$TPU_REPO_DIR
# The copy has no .git: GIT_COMMIT tells lib.runinfo which commit run.json should name.
commit=$(git -C "$REPO" rev-parse HEAD)
install="rm -rf $dir && mkdir $dir && tar -xzf $dir.tar.gz -C $dir && cd $dir"
install+=" && echo $commit > GIT_COMMIT"
install+=" && python3 -m pip install --user --quiet uv"
install+=" && python3 -m uv venv --quiet --python 3.12 .venv"
install+=" && python3 -m uv pip install --quiet --python .venv/bin/python -e \".[tpu]\""

run git -C "$REPO" archive --format=tar.gz --output="$tarball" HEAD
run gcloud compute tpus tpu-vm scp "$tarball" "$name:$dir.tar.gz" "${where[@]}" --worker=all
run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all --command "$install"
