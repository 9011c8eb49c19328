#!/usr/bin/env bash
# Counts the user-space instructions the server spends per run or per connection, with
# valgrind's callgrind: deterministic, so it compares builds on a shared, noisy machine where
# CPU time cannot. Used for docs/performance.md ("Where agentwire's CPU goes").
#
#   cargo build --release -p agentwire-cli --bin agentwire -p agentwire-benches --bin agentwire-baseline
#   scripts/perf-callgrind.sh runs agentwire      # per run: 3,000 runs on 10 connections
#   scripts/perf-callgrind.sh runs baseline       # the same against agentwire-baseline
#   scripts/perf-callgrind.sh connections agentwire   # per connection: 2,000 opened, closed
#   SERVER_ARGS="--replay-max-events 0" scripts/perf-callgrind.sh runs agentwire  # extra serve flags
#   SERVER_ARGS="--redis-url redis://127.0.0.1:6379/0" scripts/perf-callgrind.sh runs agentwire
#   scripts/perf-callgrind.sh runs bridged        # agentwire --agent-url to agentwire-ndjson-agent
#   AGENT_ARGS=--one-chunk scripts/perf-callgrind.sh runs bridged  # extra agent-service flags
#
# `bridged` forwards every run to agentwire-ndjson-agent (agentwire-benches, one thread, not
# under callgrind) with the service token on; only agentwire's instructions are counted.
#
# The server runs under callgrind on a free loopback port; a warm-up pass runs first, then
# the counters are zeroed, the measured workload runs, and the counters are dumped. Prints
# the total and the total per unit; the profile is left in $OUT (callgrind_annotate reads it).
set -euo pipefail

mode="${1:?usage: $0 runs|connections agentwire|baseline}"
kind="${2:?usage: $0 runs|connections agentwire|baseline}"
# agentwire serves and is the load generator; agentwire-baseline (agentwire-benches) is the bare
# server.
BIN="${BIN:-$(dirname "$0")/../target/release/agentwire}"
BASELINE_BIN="${BASELINE_BIN:-$(dirname "$0")/../target/release/agentwire-baseline}"
NDJSON_AGENT_BIN="${NDJSON_AGENT_BIN:-$(dirname "$0")/../target/release/agentwire-ndjson-agent}"
OUT="${OUT:-/tmp/agentwire-callgrind-$mode-$kind.out}"
SECRET="perf-callgrind-secret-of-at-least-32-bytes"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

case "$kind" in
agentwire) server=("$BIN" serve --listen "127.0.0.1:$port" --jwt-secret "$SECRET" --demo-step-ms 0
    --rate-limit-per-sec 0 --log-format json ${SERVER_ARGS:-}) ;;
baseline) server=("$BASELINE_BIN" --listen "127.0.0.1:$port") ;;
bridged)
    agent_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$NDJSON_AGENT_BIN" --listen "127.0.0.1:$agent_port" --threads 1 ${AGENT_ARGS:-} >/dev/null 2>&1 &
    agent_pid=$!
    server=("$BIN" serve --listen "127.0.0.1:$port" --jwt-secret "$SECRET" --demo-step-ms 0
        --rate-limit-per-sec 0 --log-format json --agent-url "http://127.0.0.1:$agent_port/run"
        --agent-secret "$SECRET" ${SERVER_ARGS:-}) ;;
*) echo "unknown server kind: $kind" >&2; exit 2 ;;
esac
case "$mode" in
runs) warmup=(-c 10 --runs 300); measured=(-c 10 --runs 3000); units=3000 ;;
connections) warmup=(-c 200 --idle --duration-secs 0); measured=(-c 2000 --idle --duration-secs 0); units=2000 ;;
*) echo "unknown mode: $mode" >&2; exit 2 ;;
esac

rm -f "$OUT" "$OUT".*
valgrind --tool=callgrind --callgrind-out-file="$OUT" "${server[@]}" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid ${agent_pid:-} 2>/dev/null || true' EXIT
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.3
done
# agentwire is ready when its health says so (with --redis-url, once it reached Redis).
if [ "$kind" != baseline ]; then
    for _ in $(seq 200); do
        curl -s "http://127.0.0.1:$port/ws/health" | grep -q '"healthy"' && break
        sleep 0.3
    done
fi
load() { "$BIN" load "ws://127.0.0.1:$port/ws" --token-secret "$SECRET" --json "$@" >/dev/null; }
load "${warmup[@]}"
callgrind_control --zero "$pid" >/dev/null 2>&1
load "${measured[@]}"
callgrind_control --dump "$pid" >/dev/null 2>&1
kill "$pid"
wait "$pid" 2>/dev/null || true
if [ -n "${agent_pid:-}" ]; then kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; fi
trap - EXIT
total=$(callgrind_annotate "$OUT".1 | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$kind $mode: $total instructions, $((total / units)) per ${mode%s} (profile: $OUT.1)"
