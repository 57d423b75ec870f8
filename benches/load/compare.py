#!/usr/bin/env python3
"""Load comparison on loopback, interleaved (A B C D A B C D ...), medians over rounds.

A: the upstream directly (a second nginx returning fixed 200 and 403 responses with the
   context headers); B: nginx as the proxy, configured like authz-edge; P: plain Pingora, a
   passthrough with Pingora's defaults (--plain-pingora); C: authz-edge with telemetry on (file
   sink, sampling); D: authz-edge with telemetry off (sink none); L: a minimal tokio relay, the
   floor for a Rust proxy on tokio (--lean-relay); H: the same relay job on hyper's HTTP/1
   codec (--hyper-relay), to weigh it against authz-edge's own (compare with D).
Optional E (--stalled-sink): C with its HTTP sink pointed at a server that never answers.

Reports per variant: CPU µs per request of the proxy process (from /proc/PID/stat; user and
system apart), requests per second, p50 and p99 latency (wrk, closed loop), p99 at a fixed
open-loop rate (--openloop, --open-loop-rate), peak RSS; then the ratios C/B, C/D, D/B, C/P,
D/P and E/C. The order of the variants rotates from round to round. Every run is bounded by
--duration; all traffic stays on 127.0.0.1.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")
CONTEXT = {
    "X-Authz-Route": "/reports/<int:pk>/approve/",
    "X-App-Release": "bench-1",
}
DENY = {
    "X-Authz-User": "42",
    "X-Authz-Kind": "permission",
    "X-Authz-Permission": "reports.approve_report",
    "X-Authz-Reason": "You do not have permission",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def nginx_conf(tmp, name, body, workers, single_process=False):
    d = os.path.join(tmp, name)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    # Under callgrind the worker must be the process that valgrind runs.
    master = "master_process off;" if single_process else ""
    conf = f"""
worker_processes {workers};
{master}
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
{body}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


# In --callgrind mode, the proxies run under this prefix with instrumentation off until their
# measured run.
WRAP = []


def page_html():
    """About 20 KiB of HTML, as a Django list page renders it."""
    rows = "".join(f'<tr><td><a href="/reports/{i}/">Report {i}</a></td><td class="state">approved '
                   f'by reviewer {i % 7}</td><td>2026-12-{1 + i % 28:02d}</td></tr>\n'
                   for i in range(160))
    return ("<!doctype html><html><head><title>Reports</title></head><body><table>\n"
            + rows + "</table></body></html>\n")


def upstream_conf(tmp, port):
    """Variant A: a fixed-response nginx standing in for Django, with the companion's context
    headers; /reports/ answers 403 with the denial headers; /page.html is a 20 KiB HTML page."""
    ctx = "".join(f'        add_header {k} "{v}" always;\n' for k, v in CONTEXT.items())
    deny = "".join(f'        add_header {k} "{v}" always;\n' for k, v in DENY.items())
    with open(os.path.join(tmp, "page.html"), "w") as f:
        f.write(page_html())
    # nginx's worker (nobody, when started as root) reads the page: the directory must open.
    os.chmod(tmp, 0o755)
    os.chmod(os.path.join(tmp, "page.html"), 0o644)
    return nginx_conf(tmp, "upstream", f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        keepalive_requests 1000000;
        location = /page.html {{
            default_type text/html;
            root {tmp};
        }}
        location / {{
{ctx}            default_type text/html;
            return 200 "<html><body>ok</body></html>";
        }}
        location /reports/ {{
{ctx}{deny}            default_type text/html;
            return 403 "<h1>403 Forbidden</h1>";
        }}
    }}""", 1)


def stop(p):
    """Stops a process this script started: nginx with SIGTERM, the others with SIGINT (Pingora's
    quick shutdown; SIGTERM would wait out the grace period); killed after 10 s."""
    try:
        p.send_signal(signal.SIGINT if p.args[0] != "nginx" else signal.SIGTERM)
        p.wait(timeout=10)
    except Exception:
        p.kill()


def start_nginx(conf, wrap=()):
    return subprocess.Popen([*wrap, "nginx", "-c", conf, "-p", os.path.dirname(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def callgrind_wrap(tmp, name):
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/{name}.callgrind"] if WRAP else []


def instructions_per_request(tmp, name, pid, port, seconds, connections, threads):
    """Counts the user-space instructions a proxy executes per request (repeatable, unlike time)."""
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, timeout=60)
    res = run_wrk(port, seconds, connections, threads)
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=60)
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, timeout=60)
    return callgrind_total(f"{tmp}/{name}.callgrind.1") / max(res["total"], 1), res["total"]


def callgrind_total(dump):
    """The instructions counted in a callgrind dump, once callgrind has written it."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with open(dump) as f:
                for line in f:
                    if line.startswith("totals:"):
                        return int(line.split()[1])
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"no callgrind dump {dump}")


def proc_cpu_ticks(pids):
    """(user, system) clock ticks of the processes."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user, system


def peak_rss_kib(pids):
    peak = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1])
        except OSError:
            pass
    return peak


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


def parse_latency(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return float("nan")
    n, u = float(m.group(1)), m.group(2)
    return n / 1000 if u == "us" else n if u == "ms" else n * 1000


SCRIPT = ["mix.lua"]


def run_wrk(port, duration, connections, threads):
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", os.path.join(HERE, SCRIPT[0]), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    # The "Latency Distribution" lines; anchored so that "+/- Stdev" values such as 95.50% do
    # not match.
    p50 = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(errors.group(1)) if errors else 0
    return {"rps": rps, "total": total, "p50": p50, "p99": p99, "non2xx": non2xx, "raw": out}


def run_openloop(binary, port, rate, seconds, connections):
    out = subprocess.run([binary, f"127.0.0.1:{port}", str(rate), str(seconds), str(connections)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    return json.loads(out)


def stalled_server():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    held = []

    def accept():
        while True:
            try:
                c, _ = s.accept()
                held.append(c)
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return s.getsockname()[1], s


# The ratios reported, by variant letter: numerator, denominator.
RATIOS = ("CB", "CD", "DB", "CF", "FB", "CP", "DP", "PB", "EC", "LB", "CL", "DH", "HB", "CG", "FQ")


def ratio_pairs(by_letter):
    """(label, x, y) for every ratio whose two variants were measured."""
    return [(f"{x}/{y}", by_letter[x], by_letter[y])
            for x, y in RATIOS if x in by_letter and y in by_letter]


def report_instructions(args, tmp, variants):
    """--callgrind: user-space instructions per request of each proxy, one after the other."""
    per = {}
    for name, port, pids in variants:
        if name[0] == "A":  # the upstream runs natively, not under callgrind
            continue
        pid = pids()[0]
        run_wrk(port, 1, args.connections, args.wrk_threads)  # warm up, uninstrumented
        per[name], total = instructions_per_request(tmp, name[0], pid, port, args.callgrind,
                                                    args.connections, args.wrk_threads)
        if args.keep_profiles:
            os.makedirs(args.keep_profiles, exist_ok=True)
            shutil.copy(f"{tmp}/{name[0]}.callgrind.1", args.keep_profiles)
        print(f"{name}: {per[name]:.0f} instructions/request over {total} requests", file=sys.stderr)
    print(f"\nauthz-edge instruction counts: callgrind, user space of the proxy process, "
          f"wrk -t{args.wrk_threads} -c{args.connections} for {args.callgrind}s each, "
          f"{args.workers} worker(s); instrumentation on only during the measured run.\n")
    print("| variant | instructions per request |")
    print("|---|---|")
    for name, v in per.items():
        print(f"| {name} | {v:.0f} |")
    print("\n| ratio | instructions per request |")
    print("|---|---|")
    for label, x, y in ratio_pairs({name[0]: v for name, v in per.items()}):
        print(f"| {label} | {x / y:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="nginx worker_processes = authz-edge threads")
    ap.add_argument("--stalled-sink", action="store_true", help="also run C with a stalled HTTP sink (E)")
    ap.add_argument("--authz-edge-extra", default="", help="extra [server] lines for authz-edge, e.g. 'work_stealing = false'")
    ap.add_argument("--page", action="store_true",
                    help="every request for a 20 KiB HTML page with Accept-Encoding: gzip; nginx "
                         "with gzip on, gzip_comp_level 1 and the same types (page.lua)")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="an earlier authz-edge build, run as C's and F's twins (G, Q) in the same "
                         "interleaved rounds: ratios C/G and F/Q")
    ap.add_argument("--plain-pingora", help="the plain Pingora passthrough binary (variant P)")
    ap.add_argument("--lean-relay", help="the minimal tokio relay binary (variant L)")
    ap.add_argument("--hyper-relay", help="the hyper-based relay binary (variant H)")
    ap.add_argument("--openloop", help="the open-loop load binary, for p99 at a fixed rate")
    ap.add_argument("--open-loop-rate", type=int, default=10000, help="requests per second for the open-loop p99")
    ap.add_argument("--open-loop-connections", type=int, default=64)
    ap.add_argument("--keep-profiles", metavar="DIR",
                    help="with --callgrind: keep each variant's dump (LETTER.callgrind.1) in DIR, for callgrind_annotate")
    ap.add_argument("--only", metavar="LETTERS",
                    help="run only these variants, e.g. CE for a closer look at the stalled sink "
                         "(ratios need both of their variants)")
    ap.add_argument("--callgrind", type=int, metavar="SECONDS",
                    help="instead of timing, count each proxy's instructions per request under "
                         "callgrind over a SECONDS-long wrk run (repeatable on a noisy machine)")
    args = ap.parse_args()
    if args.duration > 60 or args.rounds > 10 or (args.callgrind or 0) > 60:
        sys.exit("keep runs bounded: --duration <= 60, --rounds <= 10, --callgrind <= 60")
    if args.callgrind:
        WRAP.append("callgrind")
    if args.page:
        SCRIPT[0] = "page.lua"

    tmp = tempfile.mkdtemp(prefix="authz-edge-load-")
    procs = []
    try:
        # A: the upstream, a fixed-response nginx.
        up_port = free_port()
        upstream = upstream_conf(tmp, up_port)
        procs.append(("upstream", start_nginx(upstream)))
        wait_port(up_port)

        # B: nginx as the edge proxy, configured like authz-edge.
        b_port = free_port()
        hide = "".join(f"        proxy_hide_header {k};\n" for k in list(CONTEXT) + list(DENY))
        if args.page:
            # nginx's compression as authz-edge's defaults: level 1, the same types, vary.
            hide += ("        gzip on; gzip_comp_level 1; gzip_proxied any; gzip_vary on;\n"
                     "        gzip_min_length 1024; gzip_types text/css text/plain application/json "
                     "application/javascript application/xml image/svg+xml;\n")
        proxy_b = nginx_conf(tmp, "nginx-proxy", f"""
    upstream django {{ server 127.0.0.1:{up_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{b_port} backlog=4096;
        underscores_in_headers off;
        location / {{
            proxy_pass http://django;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Authz-User "";
            proxy_set_header X-Authz-Kind "";
            proxy_set_header X-Authz-Permission "";
            proxy_set_header X-Authz-Route "";
            proxy_set_header X-Authz-Reason "";
            proxy_set_header X-App-Release "";
{hide}        }}
    }}""", args.workers, single_process=bool(WRAP))
        procs.append(("nginx", start_nginx(proxy_b, callgrind_wrap(tmp, "B"))))
        wait_port(b_port)

        def authz_edge(letter, name, extra, server_extra="", binary=None):
            port, admin = free_port(), free_port()
            conf = os.path.join(tmp, f"{name}.toml")
            with open(conf, "w") as f:
                f.write(f"""[server]
listen = ["127.0.0.1:{port}"]
admin = "127.0.0.1:{admin}"
threads = {args.workers}
grace_period = "1s"
{server_extra}
{args.authz_edge_extra.replace(';', chr(10))}
upgrade_sock = "{tmp}/{name}.sock"
pid_file = "{tmp}/{name}.pid"
[upstream]
servers = ["127.0.0.1:{up_port}"]
keepalive_pool = 128
[limits]
max_requests_per_connection = 100000
{extra}""")
            p = subprocess.Popen([*callgrind_wrap(tmp, letter), binary or args.binary, "--config", conf],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env={**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"})
            procs.append((name, p))
            wait_port(port)
            return port, p

        def example(letter, name, binary, *extra):
            """A proxy example binary taking LISTEN UPSTREAM [EXTRA...], in front of the upstream."""
            port = free_port()
            proc = subprocess.Popen([*callgrind_wrap(tmp, letter), binary, f"127.0.0.1:{port}",
                                     f"127.0.0.1:{up_port}", *extra],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append((name, proc))
            wait_port(port)
            return port, proc

        if args.plain_pingora:
            p_port, p_proc = example("P", "plain-pingora", args.plain_pingora, str(args.workers))
        if args.lean_relay:
            l_port, l_proc = example("L", "lean-relay", args.lean_relay)
        if args.hyper_relay:
            h_port, h_proc = example("H", "hyper-relay", args.hyper_relay, str(args.workers))

        c_port, c_proc = authz_edge("C", "authz-edge-on", f"""[telemetry]
enabled = true
[sink]
type = "file"
path = "{tmp}/diagnostics.jsonl"
""")
        d_port, d_proc = authz_edge("D", "authz-edge-off", """[telemetry]
enabled = false
[sink]
type = "none"
""")
        # F: C's config with every request through Pingora's proxy loop instead of the relay.
        f_port, f_proc = authz_edge("F", "authz-edge-pingora-loop", f"""[telemetry]
enabled = true
[sink]
type = "file"
path = "{tmp}/diagnostics-f.jsonl"
""", server_extra="fast_path = false")
        variants = [
            ("A upstream direct", up_port, lambda: [procs[0][1].pid] + children(procs[0][1].pid)),
            ("B nginx", b_port, lambda: [procs[1][1].pid] + children(procs[1][1].pid)),
            ("C authz-edge, telemetry on", c_port, lambda: [c_proc.pid]),
            ("D authz-edge, telemetry off", d_port, lambda: [d_proc.pid]),
            ("F authz-edge, telemetry on, Pingora's loop (fast_path off)", f_port,
             lambda: [f_proc.pid]),
        ]
        if args.plain_pingora:
            variants.insert(2, ("P plain Pingora", p_port, lambda: [p_proc.pid]))
        if args.lean_relay:
            variants.append(("L lean tokio relay (the floor)", l_port, lambda: [l_proc.pid]))
        if args.hyper_relay:
            variants.append(("H hyper relay (hyper's HTTP/1 codec, no telemetry)", h_port,
                             lambda: [h_proc.pid]))
        if args.baseline:
            g_port, g_proc = authz_edge("G", "baseline-on", f"""[telemetry]
enabled = true
[sink]
type = "file"
path = "{tmp}/diagnostics-g.jsonl"
""", binary=args.baseline)
            q_port, q_proc = authz_edge("Q", "baseline-pingora-loop", f"""[telemetry]
enabled = true
[sink]
type = "file"
path = "{tmp}/diagnostics-q.jsonl"
""", server_extra="fast_path = false", binary=args.baseline)
            variants.append(("G baseline build, telemetry on (as C)", g_port, lambda: [g_proc.pid]))
            variants.append(("Q baseline build, Pingora's loop (as F)", q_port, lambda: [q_proc.pid]))
        if args.stalled_sink:
            stall_port, _stall = stalled_server()
            e_port, e_proc = authz_edge("E", "authz-edge-stalled", f"""[telemetry]
enabled = true
[sink]
type = "http"
url = "http://127.0.0.1:{stall_port}/authz"
timeout = "60s"
""")
            variants.append(("E authz-edge, stalled HTTP sink", e_port, lambda: [e_proc.pid]))

        if args.only:
            variants = [v for v in variants if v[0][0] in args.only.upper()]
        if WRAP:
            report_instructions(args, tmp, variants)
            return
        # Warm up every variant briefly (pools, caches), then the interleaved rounds.
        for _, port, _ in variants:
            run_wrk(port, 1, args.connections, args.wrk_threads)
        results = {name: [] for name, _, _ in variants}
        for r in range(args.rounds):
            # Rotate the order each round, so that no variant always runs first or last.
            for name, port, pids in variants[r % len(variants):] + variants[:r % len(variants)]:
                before = proc_cpu_ticks(pids())
                res = run_wrk(port, args.duration, args.connections, args.wrk_threads)
                after = proc_cpu_ticks(pids())
                n = max(res["total"], 1)
                res["user_us"] = (after[0] - before[0]) / TICKS * 1e6 / n
                res["sys_us"] = (after[1] - before[1]) / TICKS * 1e6 / n
                res["cpu_us"] = res["user_us"] + res["sys_us"]
                res["ol_p99"] = float("nan")
                if args.openloop:
                    ol = run_openloop(args.openloop, port, args.open_loop_rate, args.duration,
                                      args.open_loop_connections)
                    res["ol_p99"] = ol["p99_ms"] if ol["errors"] == 0 else float("nan")
                results[name].append(res)
                print(f"round {r + 1} {name}: {res['rps']:.0f} req/s, p99 {res['p99']:.2f} ms, "
                      f"{res['cpu_us']:.1f} µs CPU/req ({res['user_us']:.1f} user), "
                      f"open-loop p99 {res['ol_p99']:.2f} ms, non-2xx {res['non2xx']}", file=sys.stderr)
        rss = {name: peak_rss_kib(pids()) for name, _, pids in variants}

        med = {}
        for name, runs in results.items():
            med[name] = {k: statistics.median(x[k] for x in runs)
                         for k in ("rps", "p50", "p99", "cpu_us", "user_us", "sys_us", "ol_p99")}
            med[name]["denied_share"] = statistics.median(x["non2xx"] / max(x["total"], 1) for x in runs)
        open_loop = (f"; open-loop p99 at {args.open_loop_rate} req/s over {args.open_loop_connections} "
                     f"connections" if args.openloop else "")
        print(f"\nauthz-edge load comparison: {args.rounds} interleaved rounds x {args.duration}s, "
              f"wrk -t{args.wrk_threads} -c{args.connections}{open_loop}, {args.workers} worker(s) for "
              f"each proxy, {os.cpu_count()} CPUs, loopback; medians.\n")
        print("| variant | CPU µs/req (proxy) | user | system | req/s | p50 ms | p99 ms | open-loop p99 ms "
              "| peak RSS MiB | 403 share |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in results:
            m = med[name]
            print(f"| {name} | {m['cpu_us']:.1f} | {m['user_us']:.1f} | {m['sys_us']:.1f} | {m['rps']:.0f} | "
                  f"{m['p50']:.2f} | {m['p99']:.2f} | {m['ol_p99']:.2f} | {rss[name] / 1024:.1f} | "
                  f"{m['denied_share']:.1%} |")
        pairs = ratio_pairs({name[0]: m for name, m in med.items()})
        print()
        print("| ratio | CPU/req | user CPU/req | throughput | p99 | open-loop p99 |")
        print("|---|---|---|---|---|---|")
        for label, x, y in pairs:
            label = label + " (stalled sink)" if label == "E/C" else label
            print(f"| {label} | {x['cpu_us'] / y['cpu_us']:.3f} | {x['user_us'] / y['user_us']:.3f} | "
                  f"{x['rps'] / y['rps']:.3f} | {x['p99'] / y['p99']:.3f} | {x['ol_p99'] / y['ol_p99']:.3f} |")
    finally:
        for _, p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
