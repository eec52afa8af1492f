#!/usr/bin/env bash
# Usage: launch/gpu/slurm.sh --config FILE.py[:arg] --workdir DIR [options] [-- --config.k=v ...]
#        launch/gpu/slurm.sh --commands FILE [--max_parallel K] [options]
#
# Submits launch/gpu/slurm.sbatch with sbatch: one run on one or more GPU nodes, requeued when
# it is preempted or reaches its time limit (see `launch/gpu/slurm.sbatch --help`). Submit from
# where the config path is valid (e.g. the repository root), in the environment the job should
# have (sbatch exports it, e.g. an activated venv).
#
# Options:
#   --config FILE.py[:arg]   experiment config, as for lib.main
#   --workdir DIR            run directory, on storage every node reaches (shared FS or gs://)
#   --commands FILE          instead of --config/--workdir: an array job with one task per line
#                            of FILE (written by launch/sweep.py --mode slurm)
#   --max_parallel K         with --commands: at most K tasks at once
#   --nodes N                nodes (default 1)
#   --gpus_per_node G        GPUs per node (default 8)
#   --per_gpu                one process per GPU (--ntasks-per-node=G --gpus-per-task=1);
#                            default: one process per node that uses all its GPUs
#   --partition P, --time T, --account A   passed to sbatch (T e.g. 24:00:00)
#   --job_name NAME          default: the workdir's (or commands file's) name
#   --dry-run                print the sbatch command instead of running it
#   -h, --help               this help
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"

config="" workdir="" commands="" max_parallel="" nodes=1 gpus_per_node=8 per_gpu=""
partition="" time="" account="" job_name="" overrides=()
split_opts "$@"
set -- "${ARGS[@]}"
while (($#)); do
  case $1 in
    --config) need_value "$@"; config=$2; shift 2 ;;
    --workdir) need_value "$@"; workdir=$2; shift 2 ;;
    --commands) need_value "$@"; commands=$2; shift 2 ;;
    --max_parallel) need_value "$@"; max_parallel=$2; shift 2 ;;
    --nodes) need_value "$@"; nodes=$2; shift 2 ;;
    --gpus_per_node) need_value "$@"; gpus_per_node=$2; shift 2 ;;
    --per_gpu) per_gpu=1; shift ;;
    --partition) need_value "$@"; partition=$2; shift 2 ;;
    --time) need_value "$@"; time=$2; shift 2 ;;
    --account) need_value "$@"; account=$2; shift 2 ;;
    --job_name) need_value "$@"; job_name=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; overrides=("$@"); break ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
for n in nodes gpus_per_node ${max_parallel:+max_parallel}; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || usage_error "--$n must be a positive whole number"
done

sbatch_args=(--nodes="$nodes")
if [[ -n $per_gpu ]]; then
  sbatch_args+=(--ntasks-per-node="$gpus_per_node" --gpus-per-task=1)
else
  sbatch_args+=(--ntasks-per-node=1 --gpus-per-node="$gpus_per_node")
fi
sbatch_args+=(${partition:+"--partition=$partition"} ${time:+"--time=$time"}
  ${account:+"--account=$account"})
if [[ -n $commands ]]; then
  [[ -z $config$workdir && ${#overrides[@]} == 0 ]] ||
    usage_error "--commands excludes --config, --workdir and overrides"
  [[ -f $commands ]] || usage_error "--commands $commands: no such file"
  commands=$(realpath "$commands")
  tasks=$(grep -c '' "$commands") || usage_error "--commands $commands is empty"
  sbatch_args+=(--array="0-$((tasks - 1))${max_parallel:+%$max_parallel}")
  job_args=(--commands "$commands")
  job_name=${job_name:-$(basename "$commands" .txt)}
else
  required config workdir
  [[ -z $max_parallel ]] || usage_error "--max_parallel needs --commands"
  job_args=(--config "$config" --workdir "$workdir")
  if ((${#overrides[@]})); then job_args+=(-- "${overrides[@]}"); fi
  job_name=${job_name:-$(basename "$workdir")}
fi

run sbatch --job-name="$job_name" "${sbatch_args[@]}" --export="ALL,LAUNCH_DIR=$REPO/launch" \
  "$REPO/launch/gpu/slurm.sbatch" "${job_args[@]}"
