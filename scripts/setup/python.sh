#!/usr/bin/env bash
# The Python venv of the agent examples (examples/agents/python): python3 with its venv
# module, then examples/agents/python/.venv with requirements.txt installed. Quick when the
# venv is there and requirements.txt has not changed since it was installed (a stamp file in
# the venv holds the file's hash and the interpreter's version).
#
#   scripts/setup/python.sh             # create or update the venv
#
# The tests that need it (cargo test -p agentwire-examples --test python_agents) look for
# examples/agents/python/.venv/bin/python and fail, naming this script, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=examples/agents/python
venv="$dir/.venv"
requirements="$dir/requirements.txt"
stamp="$venv/.requirements.sha256"
install_cmd="apt-get update && apt-get install -y python3 python3-venv"

# python3 with venv and ensurepip (Debian splits them off into python3-venv).
has_python() {
    command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1
}
if ! has_python; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "python3 with venv is missing: $install_cmd"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
    fi
    if ! has_python; then
        echo "error: python3 with its venv module is needed for the Python examples; install it with:" >&2
        echo "    $install_cmd" >&2
        exit 1
    fi
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c '' >/dev/null 2>&1; then
    echo "python venv up to date: $venv"
    exit 0
fi

# A venv of another interpreter version is made anew; otherwise it is updated in place.
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "${want#* }" != "$(cut -d' ' -f2 "$stamp")" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    python3 -m venv "$venv"
fi
rm -f "$stamp"
echo "installing $requirements into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
echo "$want" >"$stamp"
echo "python venv ready: $venv ($("$venv/bin/python" --version))"
