#!/usr/bin/env python3
"""Measures agentwire against the bare tokio-tungstenite baseline with `agentwire load`.

Every scenario runs on both servers in the same invocation, alternating which goes first,
each on a fresh server process on a free loopback port, and repeats; the summary gives the
medians and agentwire/baseline ratios. Used for docs/performance.md.

The servers are `agentwire serve` (target/release/agentwire, package agentwire-cli, which is
also the load generator) and `agentwire-baseline` (target/release/agentwire-baseline, package
agentwire-benches); the bridged scenarios also run `agentwire-ndjson-agent` (package
agentwire-benches), the agent service `agentwire serve --agent-url` forwards runs to. The
script first builds them with

    cargo build --release -p agentwire-cli --bin agentwire -p agentwire-benches \
        --bin agentwire-baseline --bin agentwire-ndjson-agent

(skip that with --no-build, e.g. with --bin / --baseline-bin pointing at other builds), then:

    python3 scripts/perf-compare.py --repeats 3            # every scenario
    python3 scripts/perf-compare.py --scenarios busy100,busy1k --repeats 5
    # an earlier build measured in the same runs (before/after):
    python3 scripts/perf-compare.py --scenarios busy100,busy1k --before-bin /tmp/old/agentwire
    # an earlier load generator against the same (current) server, alternating with this one:
    python3 scripts/perf-compare.py --scenarios busy100 --no-baseline --load-before-bin /tmp/old/agentwire

Scenarios:
    busy100, busy1k  closed loop on 100 / 1,000 connections: CPU per 1,000 events, latency
    rates            open loop on 1,000 connections at several runs/s: latency against load
    idle             19,000 idle connections: memory per connection, handshakes/s
    handshakes       10,000 connections as fast as a 2-thread load generator opens them
    burn             busy1k against the baseline made to burn 0-12 us of CPU per request
                     (`agentwire-baseline --burn-us`), beside agentwire: how the p99 follows CPU per run
    bridged          busy1k on `agentwire serve` with the demo agent (--demo-step-ms 0) and on
                     `agentwire serve --agent-url` forwarding every run to agentwire-ndjson-agent
                     (the same five events, no pause; its own process, one thread): agentwire's
                     CPU per event bridged against in-process
    held             1,000 runs in flight at once, held open 30 s (the service's --hold-ms, the
                     demo agent's --demo-step-ms): agentwire's RSS per in-flight run, bridged and
                     in-process

    python3 scripts/perf-compare.py --scenarios bridged,held --repeats 3

Only loopback addresses are used; every load run is bounded in count and time.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

SECRET = "perf-compare-secret-of-at-least-32-bytes"
AGENT_SECRET = "perf-compare-agent-service-secret-32-bytes"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = ["cargo", "build", "--release", "-p", "agentwire-cli", "--bin", "agentwire",
         "-p", "agentwire-benches", "--bin", "agentwire-baseline", "--bin", "agentwire-ndjson-agent"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def start(bins, kind, port, burn_us=0.0, demo_step_ms=0, agent_url=None):
    if kind in ("agentwire", "before", "load-before", "inprocess", "bridged"):
        binary = bins["before"] if kind == "before" else bins["agentwire"]
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--jwt-secret", SECRET,
               "--demo-step-ms", str(demo_step_ms), "--rate-limit-per-sec", "0",
               "--log-format", "json"]
        if agent_url:
            cmd += ["--agent-url", agent_url, "--agent-secret", AGENT_SECRET]
    elif kind == "agent_service":
        cmd = [bins["ndjson_agent"], "--listen", f"127.0.0.1:{port}", "--threads", "1",
               "--hold-ms", str(burn_us)]
    else:
        cmd = [bins["baseline"], "--listen", f"127.0.0.1:{port}", "--burn-us", str(burn_us)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.3)  # let the server settle before the "before" sample
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} did not start on port {port}")


def cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_bridged(bins, kind, args, hold_ms, demo_step_ms):
    """`measure` for the bridged scenarios: `inprocess` is `agentwire serve` with the demo agent
    pausing `demo_step_ms`; `bridged` forwards every run to a fresh agentwire-ndjson-agent
    holding each run `hold_ms` after agent_started."""
    if kind == "inprocess":
        return measure(bins, kind, args, demo_step_ms=demo_step_ms)
    service_port = free_port()
    service = start(bins, "agent_service", service_port, burn_us=hold_ms)
    try:
        cpu_before = cpu_seconds(service.pid)
        report = measure(bins, kind, args, agent_url=f"http://127.0.0.1:{service_port}/run")
        report["agent_service"] = {
            "pid": service.pid,
            "cpu_seconds_whole_invocation": round(cpu_seconds(service.pid) - cpu_before, 3),
        }
        return report
    finally:
        stop(service)


def measure(bins, kind, args, burn_us=0.0, demo_step_ms=0, agent_url=None):
    port = free_port()
    proc = start(bins, kind, port, burn_us, demo_step_ms, agent_url)
    try:
        before = loadavg()
        loader = bins["load-before"] if kind == "load-before" else bins["agentwire"]
        cmd = [loader, "load", f"ws://127.0.0.1:{port}/ws", "--token-secret", SECRET,
               "--server-pid", str(proc.pid), "--json"] + args
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        report = json.loads(out.stdout)
        events = pick(report, "run.events")
        generator_cpu = pick(report, "load_generator.cpu_seconds")
        if events and generator_cpu is not None:
            report["load_generator"]["cpu_us_per_event"] = round(generator_cpu * 1e6 / events, 3)
        report["loadavg_before"] = before
        report["loadavg_after"] = loadavg()
        report["command"] = " ".join(["agentwire", "load", "ws://127.0.0.1:PORT/ws",
                                      "--token-secret", "S", "--server-pid", "PID", "--json"] + args)
        return report
    finally:
        stop(proc)


SCENARIOS = {
    "busy100": [["-c", "100", "--warmup-secs", "2", "--duration-secs", "10"]],
    "busy1k": [["-c", "1000", "--warmup-secs", "2", "--duration-secs", "10"]],
    "rates": [["-c", "1000", "--rate", str(r), "--warmup-secs", "2", "--duration-secs", "10"]
              for r in (1000, 4000, 8000, 16000)],
    "idle": [["-c", "19000", "--idle", "--duration-secs", "3", "--handshake-concurrency", "64"]],
    "handshakes": [["-c", "10000", "--idle", "--duration-secs", "0", "--handshake-concurrency", "128",
                    "--threads", "2"]],
}


def pick(report, path):
    value = report
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def median(reports, path):
    values = [pick(r, path) for r in reports]
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


ROWS = [
    ("server CPU us/event", "server.cpu_us_per_event"),
    ("server CPU s/1k events", "server.cpu_s_per_1k_events"),
    ("events/s", "run.events_per_sec"),
    ("runs/s", "run.runs_per_sec"),
    ("latency p50 ms", "run.latency_ms.p50"),
    ("latency p99 ms", "run.latency_ms.p99"),
    ("latency p99.9 ms", "run.latency_ms.p99_9"),
    ("handshakes/s", "ramp.handshakes_per_sec"),
    ("server CPU us/handshake", "server.ramp_cpu_us_per_handshake"),
    ("RSS bytes/conn (end)", "server.rss_per_connection_bytes_end"),
    ("load generator CPU us/event", "load_generator.cpu_us_per_event"),
    ("errors", None),
]


def summarize_load_before(key, aw, before):
    """The current load generator against an earlier one, on the same (current) server."""
    cmd = aw[0]["command"]
    loads = [r["loadavg_before"][0] for r in aw + before]
    lines = [f"\n### {key}: load generator before/after\n",
             f"`{cmd}` (x{len(aw)} each, alternating; the server is the current `agentwire serve`; "
             f"1-min load average {min(loads):.2f}-{max(loads):.2f} before the runs)\n",
             "| figure | load generator before | after | after/before |", "|---|---|---|---|"]
    for label, path in ROWS:
        if path is None:
            ep = sum(sum(r["errors"].values()) for r in before)
            ea = sum(sum(r["errors"].values()) for r in aw)
            lines.append(f"| errors (all runs) | {ep} | {ea} | |")
            continue
        p, a = median(before, path), median(aw, path)
        if p is None and a is None:
            continue
        ratio = f"{a / p:.2f}" if a is not None and p else ""
        lines.append(f"| {label} | {p} | {a} | {ratio} |")
    return "\n".join(lines)


def summarize(results):
    lines = []
    for key, by_kind in results.items():
        bare, aw = by_kind.get("baseline", []), by_kind.get("agentwire", [])
        before = by_kind.get("before", [])
        if by_kind.get("load-before"):
            lines.append(summarize_load_before(key, aw, by_kind["load-before"]))
        if not bare:
            continue
        cmd = (aw or bare)[0]["command"]
        loads = [r["loadavg_before"][0] for r in bare + aw + before]
        lines.append(f"\n### {key}\n\n`{cmd}` (x{len(aw)} each; 1-min load average "
                     f"{min(loads):.2f}-{max(loads):.2f} before the runs)\n")
        if before:
            lines.append("| figure | baseline | agentwire | ratio | before | before ratio |")
            lines.append("|---|---|---|---|---|---|")
        else:
            lines.append("| figure | baseline | agentwire | ratio |")
            lines.append("|---|---|---|---|")
        for label, path in ROWS:
            if path is None:
                eb = sum(sum(r["errors"].values()) for r in bare)
                ea = sum(sum(r["errors"].values()) for r in aw)
                if before:
                    ep = sum(sum(r["errors"].values()) for r in before)
                    lines.append(f"| errors (all runs) | {eb} | {ea} | | {ep} | |")
                else:
                    lines.append(f"| errors (all runs) | {eb} | {ea} | |")
                continue
            b, a = median(bare, path), median(aw, path)
            if b is None and a is None:
                continue
            ratio = f"{a / b:.2f}" if a is not None and b else ""
            if before:
                p = median(before, path)
                pratio = f"{p / b:.2f}" if p is not None and b else ""
                lines.append(f"| {label} | {b} | {a} | {ratio} | {p} | {pratio} |")
            else:
                lines.append(f"| {label} | {b} | {a} | {ratio} |")
    return "\n".join(lines)


BURN_US = [0, 2, 4, 6, 8, 10, 12]

# The bridged scenarios: load arguments, the service's hold and the demo agent's step (ms).
BRIDGED = {
    "bridged": (["-c", "1000", "--warmup-secs", "2", "--duration-secs", "10"], 0, 0),
    "held": (["-c", "1000", "--duration-secs", "5", "--timeout-secs", "120"], 30000, 30000),
}

BRIDGED_ROWS = [
    ("agentwire CPU us/event", "server.cpu_us_per_event"),
    ("agentwire CPU utilization (cores)", "server.cpu_utilization"),
    ("events/s", "run.events_per_sec"),
    ("runs/s", "run.runs_per_sec"),
    ("run latency p50 ms", "run.latency_ms.p50"),
    ("run latency p99 ms", "run.latency_ms.p99"),
    ("run latency p99.9 ms", "run.latency_ms.p99_9"),
    ("agent service CPU s (whole invocation)", "agent_service.cpu_seconds_whole_invocation"),
]


def rss_per_run(report):
    """RSS growth per connection from the end of the ramp to the end of the measured phase:
    with every connection's run held open, what one in-flight run costs."""
    server = report.get("server") or {}
    established = pick(report, "connections.established") or 0
    if "rss_end_kib" not in server or not established:
        return None
    return round((server["rss_end_kib"] - server["rss_after_ramp_kib"]) * 1024 / established)


def bridged_runs(bins, name, repeats, out):
    """One bridged scenario, in-process and bridged alternating, `repeats` times each."""
    load_args, hold_ms, step_ms = BRIDGED[name]
    reports = {"inprocess": [], "bridged": []}
    for i in range(repeats):
        order = ["inprocess", "bridged"] if i % 2 == 0 else ["bridged", "inprocess"]
        for kind in order:
            report = measure_bridged(bins, kind, load_args, hold_ms, step_ms)
            report["rss_bytes_per_inflight_run"] = rss_per_run(report) if name == "held" else None
            reports[kind].append(report)
            print(f"{name} [{kind} #{i + 1}] cpu_us/event={pick(report, 'server.cpu_us_per_event')} "
                  f"events/s={pick(report, 'run.events_per_sec')} p99={pick(report, 'run.latency_ms.p99')} "
                  f"rss/run={report['rss_bytes_per_inflight_run']} errors={report['errors']} "
                  f"load={report['loadavg_before']}", file=sys.stderr, flush=True)
            if out:
                os.makedirs(out, exist_ok=True)
                with open(os.path.join(out, f"{name}-{kind}-{i + 1}.json"), "w") as f:
                    json.dump(report, f, indent=1)
    lines = []
    inproc, bridged = reports["inprocess"], reports["bridged"]
    loads = [r["loadavg_before"][0] for r in inproc + bridged]
    lines.append(f"\n### {name}\n\n`{bridged[0]['command']}` (x{repeats} each; the demo agent at "
                 f"--demo-step-ms {step_ms}, the service at --hold-ms {hold_ms}; 1-min load average "
                 f"{min(loads):.2f}-{max(loads):.2f} before the runs)\n")
    lines.append("| figure | in-process demo | bridged (NDJSON service) | bridged / in-process |")
    lines.append("|---|---|---|---|")
    rows = BRIDGED_ROWS if name == "bridged" else [("RSS bytes per in-flight run", "rss_bytes_per_inflight_run")]
    for label, path in rows:
        a, b = median(inproc, path), median(bridged, path)
        if a is None and b is None:
            continue
        ratio = f"{b / a:.2f}" if a and b is not None else ""
        lines.append(f"| {label} | {'' if a is None else a} | {'' if b is None else b} | {ratio} |")
    ea = sum(sum(r["errors"].values()) for r in inproc)
    eb = sum(sum(r["errors"].values()) for r in bridged)
    lines.append(f"| errors (all runs) | {ea} | {eb} | |")
    if name == "bridged":
        per_run = [f"{pick(r, 'server.cpu_us_per_event')}" for r in bridged]
        per_run_in = [f"{pick(r, 'server.cpu_us_per_event')}" for r in inproc]
        lines.append(f"\nCPU us/event per repeat: in-process {', '.join(per_run_in)}; "
                     f"bridged {', '.join(per_run)}")
    else:
        lines.append(f"\nRSS bytes per in-flight run per repeat: in-process "
                     f"{', '.join(str(r['rss_bytes_per_inflight_run']) for r in inproc)}; bridged "
                     f"{', '.join(str(r['rss_bytes_per_inflight_run']) for r in bridged)}")
    return "\n".join(lines)


def burn_sweep(bins, repeats):
    """busy1k on the baseline burning more and more CPU per request, and on agentwire."""
    args = SCENARIOS["busy1k"][0]
    rows = []
    for burn in BURN_US + ["agentwire"]:
        reports = []
        for i in range(repeats):
            if burn == "agentwire":
                report = measure(bins, "agentwire", args)
            else:
                report = measure(bins, "baseline", args, burn)
            reports.append(report)
            print(f"burn {burn} [#{i + 1}] cpu_us/event={pick(report, 'server.cpu_us_per_event')} "
                  f"p50={pick(report, 'run.latency_ms.p50')} p99={pick(report, 'run.latency_ms.p99')}",
                  file=sys.stderr, flush=True)
        cpu = median(reports, "server.cpu_us_per_event")
        rows.append((burn, cpu * 5 if cpu is not None else None, median(reports, "run.latency_ms.p50"),
                     median(reports, "run.latency_ms.p99"), median(reports, "run.latency_ms.p99_9")))
    lines = ["\n### burn: busy1k p99 against server CPU per run\n",
             f"`{' '.join(args)}`, medians of {repeats}; `agentwire-baseline` started with `--burn-us N`\n",
             "| server | CPU us/run | p50 ms | p99 ms | p99.9 ms |", "|---|---|---|---|---|"]
    for burn, cpu, p50, p99, p999 in rows:
        name = "agentwire" if burn == "agentwire" else f"agentwire-baseline --burn-us {burn}"
        fmt = lambda v: "" if v is None else f"{v:.1f}"
        lines.append(f"| {name} | {fmt(cpu)} | {fmt(p50)} | {fmt(p99)} | {fmt(p999)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    release = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    parser.add_argument("--bin", default=os.path.join(release, "agentwire"),
                        help="the agentwire binary (serve and load), from agentwire-cli")
    parser.add_argument("--baseline-bin", default=os.path.join(release, "agentwire-baseline"),
                        help="the bare server, from agentwire-benches")
    parser.add_argument("--ndjson-agent-bin", default=os.path.join(release, "agentwire-ndjson-agent"),
                        help="the agent service of the bridged scenarios, from agentwire-benches")
    parser.add_argument("--no-build", action="store_true",
                        help="do not run cargo build --release for the two binaries first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenarios", default="busy100,busy1k,rates,idle,handshakes")
    parser.add_argument("--out", default=None, help="directory for the raw JSON reports")
    parser.add_argument("--before-bin", default=None,
                        help="an earlier agentwire binary (for example a build of another commit) "
                             "measured in the same runs, for before/after comparisons")
    parser.add_argument("--load-before-bin", default=None,
                        help="an earlier agentwire binary used as the load generator against the "
                             "current server, alternating with the current one (the load "
                             "generator's own before/after)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not measure agentwire-baseline")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(BUILD, cwd=ROOT, check=True)
    bins = {"agentwire": args.bin, "baseline": args.baseline_bin,
            "ndjson_agent": args.ndjson_agent_bin}
    kinds = ["agentwire"] if args.no_baseline else ["baseline", "agentwire"]
    if args.before_bin:
        bins["before"] = args.before_bin
        kinds.append("before")
    if args.load_before_bin:
        bins["load-before"] = args.load_before_bin
        kinds.append("load-before")
    results = {}
    extra = []
    for name in args.scenarios.split(","):
        if name == "burn":
            extra.append(burn_sweep(bins, args.repeats))
            continue
        if name in BRIDGED:
            extra.append(bridged_runs(bins, name, args.repeats, args.out))
            continue
        for load_args in SCENARIOS[name]:
            key = f"{name} {' '.join(load_args)}"
            results[key] = {kind: [] for kind in kinds}
            for i in range(args.repeats):
                order = kinds if i % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    report = measure(bins, kind, load_args)
                    results[key][kind].append(report)
                    print(f"{key} [{kind} #{i + 1}] cpu_us/event={pick(report, 'server.cpu_us_per_event')} "
                          f"p99={pick(report, 'run.latency_ms.p99')} "
                          f"hs/s={pick(report, 'ramp.handshakes_per_sec')} "
                          f"rss/conn={pick(report, 'server.rss_per_connection_bytes_end')} "
                          f"errors={report['errors']} load={report['loadavg_before']}",
                          file=sys.stderr, flush=True)
                    if args.out:
                        os.makedirs(args.out, exist_ok=True)
                        path = os.path.join(args.out, f"{name}-{load_args[1]}-{'-'.join(load_args[2:4])}-{kind}-{i + 1}.json")
                        with open(path, "w") as f:
                            json.dump(report, f, indent=1)
    print(summarize(results))
    for table in extra:
        print(table)


if __name__ == "__main__":
    main()
