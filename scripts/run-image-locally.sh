#!/usr/bin/env bash
# Run the container image's start command on this machine, without Docker.
#
#   scripts/run-image-locally.sh [--root DIR] MODELS_DIR
#
# Mirrors the Dockerfile's runtime stage: its ENV (with /models and
# /run/prometheus-multiproc moved under a scratch root), WORKDIR, USER and
# ENTRYPOINT + CMD (`serving serve`), in an environment emptied of everything else, as
# `docker run` starts one. The models are mounted read-only, as in
# `docker run -v "$PWD/models:/models:ro"`:
#   * as root: a read-only bind mount in a private mount namespace (unshare -m), and the
#     server runs as 10001:10001 like the image's USER;
#   * otherwise: a copy with its write permissions removed.
# SERVING_* variables set by the caller are passed on and win over the image's, as
# `docker run -e` does. The checkout's code stands in for the wheel the image installs
# (PYTHONPATH), and the interpreter is the one `python3` finds, or SERVING_IMAGE_PYTHON.
#
# The gunicorn master replaces this script's process (as it is PID 1 in the container),
# so SIGTERM to this PID is the container runtime's graceful stop.
set -euo pipefail

usage() { echo "usage: $0 [--root DIR] MODELS_DIR" >&2; exit 2; }

root=""
if [[ "${1:-}" == "--root" ]]; then
    [[ $# -ge 2 ]] || usage
    root=$2
    shift 2
fi
[[ $# -eq 1 && -d "$1" ]] || usage
models_source=$(realpath "$1")
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${SERVING_IMAGE_PYTHON:-$(command -v python3)}
venv_bin=$(dirname "$python")  # stands in for /opt/venv/bin
[[ -x "$venv_bin/serving" ]] || { echo "no serving console script in $venv_bin" >&2; exit 2; }

root=${root:-$(mktemp -d "${TMPDIR:-/tmp}/serving-image.XXXXXX")}
mkdir -p "$root/models" "$root/run/prometheus-multiproc" "$root/app"
chmod 755 "$root" "$root/run" "$root/app"

# The Dockerfile's ENV, in its order; tests/deploy/test_run_image_locally.py checks
# that the names match, so the two cannot drift apart.
image_env=(
    "PATH=$venv_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "PYTHONUNBUFFERED=1"
    "PYTHONDONTWRITEBYTECODE=1"
    "SERVING_MODEL_DIR=$root/models"
    "SERVING_HOST=0.0.0.0"
    "SERVING_PORT=8000"
    "SERVING_GRPC_PORT=8081"
    "PROMETHEUS_MULTIPROC_DIR=$root/run/prometheus-multiproc"
    "OMP_NUM_THREADS=1"
    "OPENBLAS_NUM_THREADS=1"
    "MKL_NUM_THREADS=1"
)
# Not from our Dockerfile: the base image sets LANG, Docker sets HOME from the user's
# passwd entry, and PYTHONPATH puts the checkout where the image has the wheel.
runtime_env=("LANG=C.UTF-8" "HOME=/nonexistent" "PYTHONPATH=$repo_root")
caller_env=()
for name in $(compgen -e); do
    [[ "$name" == SERVING_* && "$name" != SERVING_IMAGE_PYTHON ]] && caller_env+=("$name=${!name}")
done
start=(env -i "${image_env[@]}" "${runtime_env[@]}" "${caller_env[@]}" serving serve)

if [[ $(id -u) -eq 0 ]] && unshare -m true 2>/dev/null; then
    # The image's user, where it can run this interpreter (a pyenv under /root it cannot).
    as_user=(setpriv --reuid 10001 --regid 10001 --clear-groups --)
    if "${as_user[@]}" env -i "PATH=$venv_bin:/usr/bin" serving --help >/dev/null 2>&1; then
        chown 10001:10001 "$root/run/prometheus-multiproc"
        user="user 10001"
    else
        as_user=()
        user="user root: 10001 cannot run $venv_bin/serving"
    fi
    echo "models: read-only bind mount of $models_source at $root/models; $user" >&2
    # shellcheck disable=SC2016  # expanded by the inner shell
    exec unshare -m -- sh -c '
        mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && cd "$3" || exit 1
        shift 3
        exec "$@"
    ' sh "$models_source" "$root/models" "$root/app" "${as_user[@]}" "${start[@]}"
fi
cp -R "$models_source/." "$root/models/"
chmod -R a-w "$root/models"
echo "models: read-only copy of $models_source at $root/models" >&2
cd "$root/app"
exec "${start[@]}"
