#!/usr/bin/env python3
"""Measures `agentwire serve` nodes with the Redis engine against the in-process engine.

The same load goes against `agentwire serve` (in-process engine, one node) and one or two
`agentwire serve --redis-url` nodes (sharing a redis-server of their own, persistence off, on
a free loopback port), alternating which goes first, each on fresh processes, and repeats;
the summary gives the medians and the Redis/in-process ratios. Used for
docs/performance.md, "Multi-node with Redis".

The load is one `agentwire load` process per node (`--nodes`), started at once, the
connections split evenly, each process with its own `--sub-prefix` (a user's connection is
on one node, as a load balancer spreads users); the in-process node gets the same load
processes. Per run: events/s (summed) and run latency (the highest of the processes'
percentiles), node CPU per event (each node's CPU from /proc/PID/stat over its load
process's measured window, summed, divided by the events delivered), and for the Redis runs
redis-server's CPU per published event (its /proc/PID/stat over the whole load, divided by
`agentwire_redis_published_total` summed over the nodes) and the engines' publish latency
(from emit to seq assigned: `agentwire_redis_publish_latency_seconds`, merged).

    cargo build --release -p agentwire-cli --bin agentwire
    python3 scripts/perf-redis.py --repeats 3                  # 1,000 busy connections, 1 node
    python3 scripts/perf-redis.py --repeats 3 --nodes 2        # the same over 2 Redis nodes
    python3 scripts/perf-redis.py --repeats 3 --nodes 2 --in-process-nodes 2   # against 2 in-process nodes
    python3 scripts/perf-redis.py --repeats 3 --connections 100
    python3 scripts/perf-redis.py --repeats 1 --rate 1000      # open loop: 1,000 runs/s in all

Needs redis-server (scripts/setup/redis.sh). Only loopback addresses are used; every run is
bounded in count and time.
"""

import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("perf_compare", os.path.join(ROOT, "scripts", "perf-compare.py"))
pc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pc)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis():
    port = pc.free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_node(binary, port, redis_port):
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--jwt-secret", pc.SECRET,
           "--demo-step-ms", "0", "--rate-limit-per-sec", "0", "--log-format", "json"]
    if redis_port is not None:
        cmd += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ws/health", timeout=1) as r:
                if json.load(r).get("status") == "healthy":
                    time.sleep(0.3)
                    return proc
        except Exception:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("agentwire did not become healthy")


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def histogram(text, name):
    """(count, mean s, p50 bound, p99 bound) of a Prometheus histogram."""
    buckets, total, count = [], 0.0, 0
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), int(line.split()[-1])))
        elif line.startswith(f"{name}_sum "):
            total = float(line.split()[-1])
        elif line.startswith(f"{name}_count "):
            count = int(line.split()[-1])
    def quantile(q):
        for bound, cumulative in buckets:
            if count and cumulative >= q * count:
                return bound
        return None
    return count, (total / count if count else None), quantile(0.5), quantile(0.99)


def gauge(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def run_loads(binary, ports, pids, args, connections):
    """One `agentwire load` per entry of `ports` (the connections split evenly, each with
    its own `sub` prefix so a user's connection is on one node), all at once; their reports."""
    procs = []
    share = connections // len(ports)
    for i, (port, pid) in enumerate(zip(ports, pids)):
        count = share if i < len(ports) - 1 else connections - share * (len(ports) - 1)
        cmd = [binary, "load", f"ws://127.0.0.1:{port}/ws", "--token-secret", pc.SECRET,
               "--server-pid", str(pid), "--json", "--sub-prefix", f"n{i}-", "-c", str(count)] + args
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        reports.append(json.loads(out))
    return reports


def combine(reports):
    """One report from the load processes' reports: events and events/s summed, node CPU per
    event = the nodes' summed CPU over the measured windows / the events delivered, latency
    percentiles the highest of the processes', errors and close codes summed."""
    if len(reports) == 1:
        return reports[0]
    events = sum(pc.pick(r, "run.events") or 0 for r in reports)
    # Each process reports its node's CPU over its own measured window: a node loaded by
    # several processes (the in-process node) counts once, with the mean of their readings.
    by_node = {}
    for r in reports:
        by_node.setdefault(pc.pick(r, "server.pid"), []).append(pc.pick(r, "server.measured_cpu_seconds") or 0)
    cpu = sum(statistics.mean(v) for v in by_node.values())
    combined = {
        "run": {
            "events": events,
            "events_per_sec": sum(pc.pick(r, "run.events_per_sec") or 0 for r in reports),
            "runs_per_sec": sum(pc.pick(r, "run.runs_per_sec") or 0 for r in reports),
            "runs_completed": sum(pc.pick(r, "run.runs_completed") or 0 for r in reports),
            "latency_ms": {q: max(pc.pick(r, f"run.latency_ms.{q}") or 0 for r in reports)
                           for q in ("p50", "p90", "p99", "max")},
        },
        "server": {
            "measured_cpu_seconds": cpu,
            "cpu_us_per_event": cpu * 1e6 / events if events else None,
        },
        "errors": {},
        "close_codes": {},
        "parts": reports,
    }
    for r in reports:
        for key in ("errors", "close_codes"):
            for k, v in (r.get(key) or {}).items():
                combined[key][k] = combined[key].get(k, 0) + v
    return combined


def measure(binary, engine, args, connections, nodes, in_process_nodes=1):
    """One measurement: `nodes` nodes (the Redis engine, sharing one redis-server) or
    `in_process_nodes` in-process nodes (each on its own), loaded by `nodes` load processes at
    once."""
    redis, redis_port = (None, None)
    if engine == "redis":
        redis, redis_port = start_redis()
    count = nodes if engine == "redis" else in_process_nodes
    ports = [pc.free_port() for _ in range(count)]
    procs = []
    try:
        for port in ports:
            procs.append(start_node(binary, port, redis_port))
        redis_cpu = cpu_seconds(redis.pid) if redis else None
        load_ports = [ports[i % count] for i in range(nodes)]
        load_pids = [procs[i % count].pid for i in range(nodes)]
        report = combine(run_loads(binary, load_ports, load_pids, args, connections))
        report["nodes"] = count
        report["load_processes"] = nodes
        report["command"] = " ".join(["agentwire", "load", "ws://127.0.0.1:PORT/ws", "--token-secret", "S",
                                      "--server-pid", "PID", "--json", "--sub-prefix", "nI-",
                                      "-c", str(connections // nodes)] + args)
        if redis:
            redis_cpu = cpu_seconds(redis.pid) - redis_cpu
            published = failures = batches = 0
            count_all, total_s, merged = 0, 0.0, {}
            for port in ports:
                text = metrics(port)
                published += gauge(text, "agentwire_redis_published_total") or 0
                batches += gauge(text, "agentwire_redis_batches_total") or 0
                failures += sum(float(l.split()[-1]) for l in text.splitlines()
                                if l.startswith("agentwire_redis_publish_failures_total{"))
                for line in text.splitlines():
                    if line.startswith("agentwire_redis_publish_latency_seconds_bucket"):
                        bound = line.split('le="')[1].split('"')[0]
                        merged[bound] = merged.get(bound, 0) + int(line.split()[-1])
                    elif line.startswith("agentwire_redis_publish_latency_seconds_sum "):
                        total_s += float(line.split()[-1])
                    elif line.startswith("agentwire_redis_publish_latency_seconds_count "):
                        count_all += int(line.split()[-1])
            text = "\n".join([f'agentwire_redis_publish_latency_seconds_bucket{{le="{b}"}} {v}' for b, v in merged.items()]
                             + [f"agentwire_redis_publish_latency_seconds_sum {total_s}",
                                f"agentwire_redis_publish_latency_seconds_count {count_all}"])
            count_h, mean, p50, p99 = histogram(text, "agentwire_redis_publish_latency_seconds")
            report["redis"] = {
                "published": published,
                "publish_failures": failures,
                "server_cpu_seconds": redis_cpu,
                "server_cpu_us_per_event": redis_cpu * 1e6 / published if published else None,
                "publish_latency_mean_ms": mean * 1e3 if mean is not None else None,
                "publish_latency_p50_le_ms": p50 * 1e3 if p50 is not None else None,
                "publish_latency_p99_le_ms": p99 * 1e3 if p99 is not None else None,
                "batches": batches,
            }
        node = pc.pick(report, "server.cpu_us_per_event")
        extra = pc.pick(report, "redis.server_cpu_us_per_event") if redis else 0
        report["total_cpu_us_per_event"] = node + extra if node is not None and extra is not None else None
        return report
    finally:
        for proc in procs:
            pc.stop(proc)
        if redis:
            redis.kill()
            redis.wait()


ROWS = [
    ("events/s", "run.events_per_sec"),
    ("runs/s", "run.runs_per_sec"),
    ("node CPU us/event", "server.cpu_us_per_event"),
    ("run latency p50 ms", "run.latency_ms.p50"),
    ("run latency p99 ms", "run.latency_ms.p99"),
    ("redis-server CPU us/event", "redis.server_cpu_us_per_event"),
    ("node + redis-server CPU us/event", "total_cpu_us_per_event"),
    ("publish latency mean ms", "redis.publish_latency_mean_ms"),
    ("publish latency p50 <= ms", "redis.publish_latency_p50_le_ms"),
    ("publish latency p99 <= ms", "redis.publish_latency_p99_le_ms"),
    ("events per pipelined round trip", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "agentwire"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration-secs", type=int, default=10)
    parser.add_argument("--rate", type=int, help="open loop: runs per second in all (default: closed loop)")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 2),
                        help="Redis nodes sharing the redis-server; the connections (and --rate) are split "
                             "over one load process per node, and the in-process node gets the same load "
                             "processes (default 1)")
    parser.add_argument("--in-process-nodes", type=int, default=1, choices=(1, 2),
                        help="in-process nodes to compare with (each serving its own load process's "
                             "users; at most --nodes; default 1)")
    parser.add_argument("--json", help="write every report to this file")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is missing: run scripts/setup/redis.sh")
    load_args = ["--warmup-secs", "2", "--duration-secs", str(args.duration_secs)]
    if args.rate:
        load_args += ["--rate", str(args.rate // args.nodes)]
    build = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    print(f"build {build}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average before: {pc.loadavg()}", flush=True)
    results = {"in_process": [], "redis": []}
    for i in range(args.repeats):
        order = ["in_process", "redis"] if i % 2 == 0 else ["redis", "in_process"]
        for engine in order:
            loadavg_before = pc.loadavg()
            report = measure(args.bin, engine, load_args, args.connections, args.nodes,
                             min(args.in_process_nodes, args.nodes))
            results[engine].append(report)
            report["loadavg_before"] = loadavg_before
            print(f"[{i + 1}] {engine}: load average {loadavg_before} events/s={pc.pick(report, 'run.events_per_sec')} "
                  f"cpu_us/event={pc.pick(report, 'server.cpu_us_per_event')} "
                  f"p99={pc.pick(report, 'run.latency_ms.p99')} redis={report.get('redis')} "
                  f"errors={report.get('errors')}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    local, redis = results["in_process"], results["redis"]
    print(f"\n`{redis[0]['command']}` x{args.nodes} at once (x{args.repeats} each, alternating); "
          f"Redis: {args.nodes} node(s), in-process: {min(args.in_process_nodes, args.nodes)} node(s); "
          f"1-minute load average before the runs "
          f"{min(r['loadavg_before'][0] for v in results.values() for r in v)} to "
          f"{max(r['loadavg_before'][0] for v in results.values() for r in v)}\n")
    print("| figure | in-process | Redis | ratio |")
    print("|---|---|---|---|")
    for label, path in ROWS:
        if path is None:
            values = [r["redis"]["published"] / r["redis"]["batches"] for r in redis if r["redis"]["batches"]]
            print(f"| {label} | | {statistics.median(values):.1f} | |" if values else f"| {label} | | | |")
            continue
        a, b = pc.median(local, path), pc.median(redis, path)
        ratio = f"{b / a:.2f}" if a and b is not None else ""
        fmt = lambda v: "" if v is None else (f"{v:.3g}" if isinstance(v, float) and v < 100 else f"{v:,.0f}")
        print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} |")
    failures = sum(r["redis"]["publish_failures"] for r in redis)
    print(f"| publish failures (all runs) | | {failures:.0f} | |")
    errors = {k: sum(sum(r["errors"].values()) for r in v) for k, v in results.items()}
    print(f"| errors (all runs) | {errors['in_process']} | {errors['redis']} | |")


if __name__ == "__main__":
    main()
