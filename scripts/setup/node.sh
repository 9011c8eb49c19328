#!/usr/bin/env bash
# The TypeScript client's tests (clients/typescript, run by the agentwire-cli test
# `typescript_client`): Node.js 20 or later with npm, Debian's chromium (driven by
# playwright-core; no browser download), and the package's node_modules, installed with
# `npm ci` from the committed package-lock.json when missing or when the lockfile changed.
# Quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

node_major() {
    node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

packages=()
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi
if [ ! -x /usr/bin/chromium ]; then
    packages+=(chromium)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    echo "installing ${packages[*]} (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if [ "$(node_major)" -lt 20 ]; then
    echo "scripts/setup/node.sh: Node.js $(node --version 2>/dev/null || echo missing) is too old: the" \
        "TypeScript client's tests need Node.js 20 or later (its global WebSocket). Debian 12's" \
        "nodejs is 18: install Node.js 20+ (e.g. the nodejs package of Debian 13, or NodeSource's)." >&2
    exit 1
fi

client=clients/typescript
stamp="$client/node_modules/.agentwire-lock.sha256"
want="$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "npm ci in $client"
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
fi
