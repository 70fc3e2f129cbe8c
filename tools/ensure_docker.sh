#!/usr/bin/env bash
# Make sure a Docker engine answers and the ccactors base image exists. Idempotent:
#   * `docker info` already works           -> leave the engine alone;
#   * a dockerd is running but still starting -> wait for it (never start a second one);
#   * no engine, running as root            -> install docker.io when dockerd is missing,
#                                              start dockerd in the background, wait for it;
#   * no engine, not root                   -> exit 3 saying why.
# Then build the base image (`ccactors images build`) when it is missing or out of date.
#
# Environment: PYTHON (default .venv/bin/python, else python3), DOCKER_WAIT (seconds, default
# 60), ENSURE_DOCKER_NO_IMAGES=1 to skip the image step, ENSURE_DOCKER_NODE=1 to build the
# Node base image too, DOCKER_HOST as usual.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WAIT=${DOCKER_WAIT:-60}
LOG=/var/log/dockerd.log

say() { echo "ensure_docker: $*" >&2; }

engine_up() {
    if command -v docker >/dev/null 2>&1; then
        docker info >/dev/null 2>&1
    else
        "$PYTHON" -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1
    fi
}

dockerd_running() {
    # The daemon's own pid file first, then any process named exactly dockerd.
    if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        return 0
    fi
    pgrep -x dockerd >/dev/null 2>&1
}

wait_for_engine() {
    local waited=0
    while ! engine_up; do
        if [ "$waited" -ge "$WAIT" ]; then
            say "the Docker engine did not answer within ${WAIT}s; last lines of $LOG:"
            tail -n 20 "$LOG" >&2 2>/dev/null || true
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "Docker engine is up (after ${waited}s)"
}

ENDPOINT=${DOCKER_HOST:-unix:///var/run/docker.sock}
if engine_up; then
    say "Docker engine already answers; leaving it alone"
elif [ "$(id -u)" -ne 0 ]; then
    say "no Docker engine answers at $ENDPOINT and this user is not root,"
    if dockerd_running; then
        say "yet a dockerd is running: this user may not use its socket (join the docker group)."
    else
        say "so it cannot install or start dockerd. Start Docker yourself (or ask root to run"
        say "tools/ensure_docker.sh) to run the Docker tests."
    fi
    exit 3
elif [ "$ENDPOINT" != "unix:///var/run/docker.sock" ]; then
    say "DOCKER_HOST=$ENDPOINT does not answer; not starting a local dockerd for another endpoint"
    exit 3
elif dockerd_running; then
    say "dockerd is running but not answering yet; waiting (not starting another one)"
    wait_for_engine
else
    if ! command -v dockerd >/dev/null 2>&1; then
        say "installing docker.io (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q docker.io >/dev/null
    fi
    say "starting dockerd in the background (log: $LOG)"
    setsid dockerd >>"$LOG" 2>&1 </dev/null &
    wait_for_engine
fi

if [ "${ENSURE_DOCKER_NO_IMAGES:-0}" = "1" ]; then
    exit 0
fi
"$PYTHON" -m actors.cli images build
# The Node base image (Debian's nodejs + npm, ~1 min, 350 MB) is built the first time a node
# package is; ENSURE_DOCKER_NODE=1 builds it now (e.g. to warm a CI cache or a machine image).
if [ "${ENSURE_DOCKER_NODE:-0}" = "1" ]; then
    "$PYTHON" -c 'from actors.images import docker_client, ensure_node_image
ensure_node_image(docker_client(), progress=print)'
fi
