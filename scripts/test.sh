#!/usr/bin/env bash
# The project's test command: installs what the tests need and is missing (each
# scripts/setup/*.sh, in name order), then runs every test of the workspace.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p agentwire-server --test resume   # extra arguments go to cargo test
#
# A setup script that cannot install its tool fails with the command that would; the tests
# that need a tool fail (never skip) when it is missing, naming the setup script to run.
set -euo pipefail
cd "$(dirname "$0")/.."

for setup in scripts/setup/*.sh; do
    [ -e "$setup" ] || continue
    printf '==> %s\n' "$setup"
    bash "$setup"
done

if [ "$#" -eq 0 ]; then
    exec cargo test --workspace --all-features
else
    exec cargo test --all-features "$@"
fi
