#!/usr/bin/env bash
# Installs redis-server (Debian package `redis-server`) for the Redis engine's tests
# (crates/agentwire-redis), unless it is already on PATH. The tests start their own
# redis-server on a free loopback port with persistence off; the package's own service is not
# needed, and is not started here.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "redis-server is missing; install it as root: apt-get update && apt-get install -y redis-server" >&2
        exit 1
    fi
    sudo=(sudo)
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is missing and apt-get is not here: install redis-server (7 or later) by other means" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends redis-server
command -v redis-server >/dev/null 2>&1 || {
    echo "apt-get installed redis-server but it is not on PATH" >&2
    exit 1
}
