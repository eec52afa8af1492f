# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# Helpers shared by the launch scripts, which `source` this file.
#
# Conventions: options take `--opt value` or `--opt=value`; `--dry-run` sets DRY_RUN=1, and `run`
# then prints each command, quoted as Python's shlex.quote quotes (launch/sweep.py prints the
# same way), instead of running it; `--` ends the options and passes the rest to lib.main.

if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 404)); then
  echo "error: the launch scripts need bash >= 4.4, this is $BASH_VERSION" \
    "(on macOS: brew install bash)" >&2
  exit 2
fi

DRY_RUN=0
# The interpreter that runs lib.main; tests substitute a stand-in.
PYTHON=${PYTHON:-python}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# Where setup.sh unpacks this repository on TPU workers, relative to the home directory.
TPU_REPO_DIR=ier

# The calling script's header comment, from its second line to the first line that is no comment.
usage() { awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; }

die() {
  echo "error: $*" >&2
  exit 1
}

# A bad command line: exit 2, as argparse and lib.main do.
usage_error() {
  echo "error: $*" >&2
  usage | head -n 1 >&2
  echo "Run '$0 --help' for details." >&2
  exit 2
}

# `need_value "$@"` in an option's case: that option has a value.
need_value() { (($# >= 2)) || usage_error "$1 needs a value"; }

# `required config workdir`: each named variable is set, else the error names its option.
required() {
  local _var  # not a name the scripts use, or ${!_var} would read this local
  for _var in "$@"; do
    [[ -n ${!_var} ]] || usage_error "--$_var is required"
  done
}

# Sets ARGS to the arguments with every `--opt=value` before `--` split into `--opt value`.
split_opts() {
  ARGS=()
  while (($#)); do
    case $1 in
      --) ARGS+=("$@"); return ;;
      --*=*) ARGS+=("${1%%=*}" "${1#*=}") ;;
      *) ARGS+=("$1") ;;
    esac
    shift
  done
}

# The arguments as one shell line: unquoted where safe, else in single quotes (= shlex.join).
quote() {
  local arg words=()
  for arg in "$@"; do
    if [[ -n $arg && $arg != *[!A-Za-z0-9_@%+=:,./-]* ]]; then
      words+=("$arg")
    else
      words+=("'${arg//\'/\'\"\'\"\'}'")
    fi
  done
  echo "${words[*]}"
}

run() {
  if ((DRY_RUN)); then quote "$@"; else "$@"; fi
}
