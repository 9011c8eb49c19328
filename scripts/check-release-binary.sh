#!/usr/bin/env bash
# Checks that the release `agentwire` binary (what users deploy) holds no test fixture: none of
# the committed keys in crates/agentwire-auth/fixtures/keys/ (they are public: anything they
# sign must never verify in production). agentwire-auth embeds them only with its `testing`
# feature, which no normal dependency of agentwire-cli may enable (tests/deps.rs checks the
# dependency graph; this checks the bytes).
#
#   scripts/check-release-binary.sh            # builds, then checks target/release/agentwire
#   NO_BUILD=1 BIN=path/to/agentwire scripts/check-release-binary.sh
#
# It looks for the HMAC fixture secret and one base64 line of every PEM file (the middle one,
# which is key material, not the ASN.1 header every key of its type shares), with grep -a -F.
# Exits 1 when any is found, 2 when it cannot check.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=crates/agentwire-auth/fixtures/keys
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/agentwire}"

if [[ -z "${NO_BUILD:-}" ]]; then
    echo "building: cargo build --release -p agentwire-cli"
    cargo build --release -p agentwire-cli
fi
[[ -f "$BIN" ]] || { echo "no binary at $BIN" >&2; exit 2; }
echo "checking $BIN ($(wc -c <"$BIN") bytes) for the fixture keys in $KEYS/"

# A string the binary must contain: proves grep reads this binary's text at all.
control="DEVELOPMENT ONLY: random secret"
found=$(grep -c -a -F -e "$control" "$BIN" || true)
if [[ "$found" -eq 0 ]]; then
    echo "control string \"$control\" not found: grep cannot read $BIN, nothing was checked" >&2
    exit 2
fi
printf '  %-32s %-24s %s\n' "control (must be found)" "${control:0:20}..." "found ($found)"

failed=0
checked=0
check() { # check LABEL NEEDLE
    local label="$1" needle="$2" count
    [[ ${#needle} -ge 40 ]] || { echo "needle of $label is too short to be distinctive" >&2; exit 2; }
    count=$(grep -c -a -F -e "$needle" "$BIN" || true)
    checked=$((checked + 1))
    if [[ "$count" -eq 0 ]]; then
        printf '  %-32s %-24s %s\n' "$label" "${needle:0:20}..." "absent"
    else
        printf '  %-32s %-24s %s\n' "$label" "${needle:0:20}..." "FOUND ($count)"
        failed=1
    fi
}

check "hmac-secret.txt" "$(head -n 1 "$KEYS/hmac-secret.txt")"
for pem in "$KEYS"/*.pem; do
    mapfile -t lines < <(grep -v -e '^-----' "$pem")
    [[ ${#lines[@]} -gt 0 ]] || { echo "no base64 line in $pem" >&2; exit 2; }
    check "$(basename "$pem")" "${lines[${#lines[@]} / 2]}"
done

if [[ "$failed" -ne 0 ]]; then
    echo "FAIL: the release binary contains test fixture keys (agentwire-auth's \`testing\` feature" >&2
    echo "      is enabled in a normal dependency of agentwire-cli?)" >&2
    exit 1
fi
echo "ok: none of the $checked fixture keys is in $BIN"
