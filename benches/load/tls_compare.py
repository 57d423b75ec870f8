#!/usr/bin/env python3
"""The three protocols on loopback: nginx (B) and authz-edge with telemetry on (C), in front
of the same fixed-response upstream (compare.py's variant A), one worker each, interleaved
rounds, medians; then, with --callgrind SECONDS, the user-space instructions per request of
each proxy in each mode (callgrind, repeatable where timings on a busy 2-core machine are not),
printed beside the timings.

Modes (each bounded by --duration):
  h1         wrk, plain HTTP/1.1, --connections keepalive connections
  h2         h2load, HTTP/2 over TLS: --connections x --streams concurrent streams
  h1s        wrk, HTTP/1.1 over TLS, --connections keepalive connections
  handshake  h2load runs of many connections with --per-conn requests each, back to back for
             --duration: full TLS handshakes (no resumption: h2load does not resume) per
             second and CPU per handshake

10% of requests get a 403 with the companion's context headers (as compare.py's mix.lua).
nginx's keepalive_requests is raised so that connections are not closed after 1,000 requests.
Reports CPU µs per request of the proxy process (/proc/PID/stat), requests per second, and the
ratios C/B. Usage: tls_compare.py --binary target/release/authz-edge [--modes h1,h2,h1s,handshake]
[--callgrind 5]
"""
import argparse
import os
import re
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (free_port, nginx_conf, start_nginx, wait_port, proc_cpu_ticks)

URIS = ["/"] * 9 + ["/reports/1/approve/"]


def cert(tmp):
    key, crt = f"{tmp}/key.pem", f"{tmp}/cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return crt, key


def h2load(port, args, duration, connections, streams, per_conn=None):
    urls = [f"https://127.0.0.1:{port}{u}" for u in URIS]
    if per_conn:
        cmd = ["h2load", "-n", str(connections * per_conn), "-c", str(connections), "-m", "1", *urls]
    else:
        cmd = ["h2load", "-D", str(duration), "-c", str(connections), "-m", str(streams), "-t", "1", *urls]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m:
        sys.exit(f"h2load failed:\n{out}")
    done = int(m.group(1))
    secs = re.search(r"finished in ([\d.]+)(ms|s)", out)
    elapsed = float(secs.group(1)) / (1000 if secs.group(2) == "ms" else 1)
    codes = re.search(r"status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx", out)
    return {"total": done, "elapsed": elapsed, "rps": done / max(elapsed, 1e-9),
            "denied": int(codes.group(2)) / max(done, 1) if codes else float("nan")}


def wrk_https(port, duration, connections):
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s",
                          os.path.join(HERE, "mix.lua"), f"https://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"total": total, "rps": rps, "elapsed": duration, "denied": float("nan")}


def load(mode, port, args):
    """Runs one mode's load for --duration; returns its result and the units it counts (requests,
    or connections for handshakes)."""
    if mode == "h1":
        r = compare.run_wrk(port, args.duration, args.connections, 1)
        return r, r["total"]
    if mode == "h2":
        r = h2load(port, args, args.duration, args.connections, args.streams)
        return r, r["total"]
    if mode == "h1s":
        r = wrk_https(port, args.duration, args.connections)
        return r, r["total"]
    # Handshakes: back-to-back h2load runs for the duration; one handshake per connection.
    start, conns, total = time.time(), 0, 0
    while time.time() - start < args.duration:
        x = h2load(port, args, args.duration, args.handshake_connections, 1, args.per_conn)
        conns += args.handshake_connections
        total += x["total"]
    r = {"total": total, "rps": conns / (time.time() - start), "elapsed": time.time() - start,
         "denied": float("nan")}
    return r, conns


def measure(mode, ports, pids, args):
    port = ports[0] if mode == "h1" else ports[1]
    before = compare.proc_cpu_ticks(pids())
    r, units = load(mode, port, args)
    after = compare.proc_cpu_ticks(pids())
    r["cpu_us"] = ((after[0] - before[0]) + (after[1] - before[1])) / compare.TICKS * 1e6 / max(units, 1)
    return r


def instructions(mode, ports, pid, dump, args):
    """Instructions per request (per handshake) of the proxy `pid`, running under callgrind with
    instrumentation off: on for one --callgrind run of `mode`, then dumped to `dump`."""
    port = ports[0] if mode == "h1" else ports[1]
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, timeout=60)
    _, units = load(mode, port, argparse.Namespace(**{**vars(args), "duration": args.callgrind}))
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=120)
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, timeout=60)
    return compare.callgrind_total(dump) / max(units, 1)


def nginx_body(b_plain, b_port, up_port, crt, key):
    hide = "".join(f"        proxy_hide_header {k};\n" for k in list(compare.CONTEXT) + list(compare.DENY))
    return f"""
    upstream django {{ server 127.0.0.1:{up_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{b_plain} backlog=4096;
        listen 127.0.0.1:{b_port} ssl http2 backlog=4096;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://django;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-Id $request_id;
{hide}        }}
    }}"""


def edge_conf(tmp, c_plain, c_port, admin, up_port, crt, key, workers=1):
    conf = f"{tmp}/authz-edge-{c_port}.toml"
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{c_plain}"]
admin = "127.0.0.1:{admin}"
threads = {workers}
grace_period = "1s"
upgrade_sock = "{tmp}/ae-{c_port}.sock"
pid_file = "{tmp}/ae-{c_port}.pid"
[tls]
listen = ["127.0.0.1:{c_port}"]
cert = "{crt}"
key = "{key}"
[upstream]
servers = ["127.0.0.1:{up_port}"]
keepalive_pool = 128
[limits]
max_requests_per_connection = 1000000
[telemetry]
enabled = true
[sink]
type = "file"
path = "{tmp}/diagnostics-{c_port}.jsonl"
""")
    return conf


LABELS = {"h1": "plain HTTP/1.1 (wrk, {c} connections)",
          "h2": "HTTP/2 over TLS (h2load, {c} x {s} streams)",
          "h1s": "HTTP/1.1 over TLS (wrk, {c} connections)",
          "handshake": "full handshakes ({h} connections x {p} requests)"}


def label(mode, args):
    return LABELS[mode].format(c=args.connections, s=args.streams, h=args.handshake_connections,
                               p=args.per_conn)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--modes", default="h1,h2,h1s,handshake")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="an earlier authz-edge build, run as G in the same interleaved rounds (ratio C/G)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--streams", type=int, default=10, help="concurrent streams per h2 connection")
    ap.add_argument("--handshake-connections", type=int, default=64)
    ap.add_argument("--per-conn", type=int, default=2, help="requests per connection in handshake mode")
    ap.add_argument("--workers", type=int, default=1,
                    help="nginx worker_processes and authz-edge threads (both proxies alike)")
    ap.add_argument("--keep-profiles", metavar="DIR",
                    help="with --callgrind: copy the callgrind dumps here (callgrind_annotate)")
    ap.add_argument("--callgrind", type=int, default=0,
                    help="seconds of load per mode under callgrind after the timings (0: none)")
    args = ap.parse_args()
    if args.duration > 60 or args.rounds > 10 or args.callgrind > 30:
        sys.exit("keep runs bounded: --duration <= 60, --rounds <= 10, --callgrind <= 30")
    tmp = tempfile.mkdtemp(prefix="authz-edge-tls-")
    crt, key = cert(tmp)
    procs = []
    modes = [m for m in args.modes.split(",") if m]
    try:
        up_port = compare.free_port()
        up = compare.upstream_conf(tmp, up_port)
        procs.append(compare.start_nginx(up))
        compare.wait_port(up_port)

        b_ports = (compare.free_port(), compare.free_port())
        b = compare.nginx_conf(tmp, "nginx-tls", nginx_body(*b_ports, up_port, crt, key), args.workers)
        nginx_b = compare.start_nginx(b)
        procs.append(nginx_b)
        compare.wait_port(b_ports[1])

        c_ports, admin = (compare.free_port(), compare.free_port()), compare.free_port()
        conf = edge_conf(tmp, *c_ports, admin, up_port, crt, key, args.workers)
        c = subprocess.Popen([args.binary, "--config", conf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"})
        procs.append(c)
        compare.wait_port(c_ports[1])
        variants = [("B nginx", b_ports, lambda: [nginx_b.pid] + compare.children(nginx_b.pid)),
                    ("C authz-edge", c_ports, lambda: [c.pid])]
        if args.baseline:
            g_ports, g_admin = (compare.free_port(), compare.free_port()), compare.free_port()
            g_conf = edge_conf(tmp, *g_ports, g_admin, up_port, crt, key, args.workers)
            g = subprocess.Popen([args.baseline, "--config", g_conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 env={**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"})
            procs.append(g)
            compare.wait_port(g_ports[1])
            variants.append(("G baseline", g_ports, lambda: [g.pid]))
        results = {(m, v[0]): [] for m in modes for v in variants}
        # One run: every mode's rounds interleave the two proxies, alternating which goes first.
        for _, ports, pids in variants:
            for mode in modes:
                measure(mode, ports, pids, argparse.Namespace(**{**vars(args), "duration": 1}))
        for r in range(args.rounds):
            for mode in modes:
                for name, ports, pids in (variants if r % 2 == 0 else variants[::-1]):
                    res = measure(mode, ports, pids, args)
                    results[(mode, name)].append(res)
                    print(f"{mode} round {r + 1} {name}: {res['rps']:.0f}/s, {res['cpu_us']:.1f} µs CPU "
                          f"per {'handshake' if mode == 'handshake' else 'request'}", file=sys.stderr)

        counts = {}
        if args.callgrind:
            # The same proxies again, each under callgrind with instrumentation off until its run.
            for p in (nginx_b, c):
                compare.stop(p)
            nb = compare.nginx_conf(tmp, "nginx-cg", nginx_body(*b_ports, up_port, crt, key), 1,
                                    single_process=True)
            cg_b = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                     f"--callgrind-out-file={tmp}/B.callgrind",
                                     "nginx", "-c", nb, "-p", os.path.dirname(nb)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cg_c = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                     f"--callgrind-out-file={tmp}/C.callgrind", args.binary,
                                     "--config", conf], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                    env={**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"})
            procs += [cg_b, cg_c]
            for port in (*b_ports, *c_ports):
                compare.wait_port(port)
            for letter, ports, pid in (("B", b_ports, cg_b.pid), ("C", c_ports, cg_c.pid)):
                for i, mode in enumerate(modes, start=1):
                    per = instructions(mode, ports, pid, f"{tmp}/{letter}.callgrind.{i}", args)
                    counts[(mode, letter)] = per
                    print(f"{mode} {letter}: {per:.0f} instructions", file=sys.stderr)

        print(f"\nOne run: {args.rounds} interleaved rounds x {args.duration}s per mode, "
              f"{args.workers} worker(s) each, {os.cpu_count()} CPUs, loopback; medians"
              + (f"; then callgrind, {args.callgrind}s per mode, user space of the proxy process"
                 if args.callgrind else "") + ".\n")
        head = "| mode | nginx CPU µs | authz-edge CPU µs | CPU ratio C/B | nginx /s | authz-edge /s | throughput ratio C/B |"
        rule = "|---|---|---|---|---|---|---|"
        if args.callgrind:
            head += " nginx instructions | authz-edge instructions | instructions C/B |"
            rule += "---|---|---|"
        print(head)
        print(rule)
        for mode in modes:
            b_ = {k: statistics.median(x[k] for x in results[(mode, 'B nginx')]) for k in ("cpu_us", "rps")}
            c_ = {k: statistics.median(x[k] for x in results[(mode, 'C authz-edge')]) for k in ("cpu_us", "rps")}
            row = (f"| {label(mode, args)} | {b_['cpu_us']:.1f} | {c_['cpu_us']:.1f} | "
                   f"{c_['cpu_us'] / b_['cpu_us']:.3f} | {b_['rps']:.0f} | {c_['rps']:.0f} | "
                   f"{c_['rps'] / b_['rps']:.3f} |")
            if args.callgrind:
                ib, ic = counts[(mode, "B")], counts[(mode, "C")]
                row += f" {ib:.0f} | {ic:.0f} | {ic / ib:.3f} |"
            print(row)
        if args.baseline:
            print("\n| mode | baseline CPU µs | authz-edge CPU µs | CPU ratio C/G | throughput ratio C/G |")
            print("|---|---|---|---|---|")
            for mode in modes:
                med = {v: {k: statistics.median(x[k] for x in results[(mode, v)]) for k in ("cpu_us", "rps")}
                       for v in ("C authz-edge", "G baseline")}
                c_, g_ = med["C authz-edge"], med["G baseline"]
                print(f"| {label(mode, args)} | {g_['cpu_us']:.1f} | {c_['cpu_us']:.1f} | "
                      f"{c_['cpu_us'] / g_['cpu_us']:.3f} | {c_['rps'] / g_['rps']:.3f} |")
    finally:
        for p in procs:
            compare.stop(p)
        if args.keep_profiles:
            os.makedirs(args.keep_profiles, exist_ok=True)
            for f in os.listdir(tmp):
                if ".callgrind" in f:
                    shutil.copy(os.path.join(tmp, f), args.keep_profiles)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
