#!/usr/bin/env python3
"""Requests lost across binary upgrades under keepalive load: authz-edge (`--upgrade` + SIGQUIT)
beside nginx (USR2, WINCH, QUIT), each in front of the same fixed-response upstream
(compare.py's variant A), on loopback.

Clients keep one connection each and send GETs and POSTs with 0 to 2 ms between them. A
request counts as lost when it was written and no complete response came back (a response
with `Connection: close` is not a loss: the client opens a new connection, as browsers and wrk
do). Usage: upgrade_loss.py --binary target/release/authz-edge [--upgrades 3] [--clients 8]
"""
import argparse
import http.client
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402


def load(port, clients, stop, stats):
    def client(c):
        conn, i = None, 0
        while not stop.is_set():
            i += 1
            time.sleep(((i * 7919 + c * 104729) % 2000) / 1e6)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                if i % 4 == 0:
                    conn.request("POST", f"/c{c}/{i}", body=b"hello")
                else:
                    conn.request("GET", f"/c{c}/{i}")
                r = conn.getresponse()
                r.read()
                stats["ok"] += 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                stats["lost"] += 1
                conn.close()
                conn = None
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    return threads


def run(name, port, upgrade, args):
    stop, stats = threading.Event(), {"ok": 0, "lost": 0}
    threads = load(port, args.clients, stop, stats)
    time.sleep(1)
    for _ in range(args.upgrades):
        upgrade()
        time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    print(f"| {name} | {args.upgrades} | {stats['ok'] + stats['lost']} | {stats['lost']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--upgrades", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    if args.upgrades > 10:
        sys.exit("keep runs bounded: --upgrades <= 10")
    tmp = tempfile.mkdtemp(prefix="authz-edge-upgrade-")
    procs = []
    try:
        up_port = compare.free_port()
        procs.append(compare.start_nginx(compare.upstream_conf(tmp, up_port)))
        compare.wait_port(up_port)
        print("| proxy | upgrades | requests | lost |\n|---|---|---|---|")

        # nginx: the documented binary upgrade, same binary.
        n_port = compare.free_port()
        conf = compare.nginx_conf(tmp, "nginx-proxy", f"""
    upstream django {{ server 127.0.0.1:{up_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{n_port};
        location / {{ proxy_pass http://django; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""", 1)
        # A binary upgrade wants a daemon: the new master must outlive the old one.
        with open(conf) as f:
            text = f.read().replace("daemon off;", "daemon on;")
        with open(conf, "w") as f:
            f.write(text)
        pid_file = os.path.join(os.path.dirname(conf), "nginx.pid")
        subprocess.run(["/usr/sbin/nginx", "-c", conf, "-p", os.path.dirname(conf)], check=True)
        compare.wait_port(n_port)

        def nginx_upgrade():
            old = int(open(pid_file).read())
            os.kill(old, signal.SIGUSR2)
            deadline = time.time() + 10
            while not os.path.exists(pid_file + ".oldbin") and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            os.kill(old, signal.SIGWINCH)
            time.sleep(1)
            os.kill(old, signal.SIGQUIT)
            while os.path.exists(pid_file + ".oldbin") and time.time() < deadline + 10:
                time.sleep(0.05)

        run("nginx 1.22 (USR2, WINCH, QUIT)", n_port, nginx_upgrade, args)
        os.kill(int(open(pid_file).read()), signal.SIGQUIT)

        # authz-edge: --upgrade then SIGQUIT to the old process.
        a_port, admin = compare.free_port(), compare.free_port()
        aconf = os.path.join(tmp, "authz-edge.toml")
        with open(aconf, "w") as f:
            f.write(f"""[server]
listen = ["127.0.0.1:{a_port}"]
admin = "127.0.0.1:{admin}"
grace_period = "2s"
upgrade_sock = "{tmp}/up.sock"
pid_file = "{tmp}/ae.pid"
[upstream]
servers = ["127.0.0.1:{up_port}"]
[sink]
type = "none"
""")
        env = {**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"}
        current = [subprocess.Popen([args.binary, "--config", aconf], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        compare.wait_port(a_port)

        def authz_upgrade():
            new = subprocess.Popen([args.binary, "--config", aconf, "--upgrade"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            current[0].send_signal(signal.SIGQUIT)
            current[0].wait(timeout=30)
            current[0] = new

        run("authz-edge (--upgrade, SIGQUIT)", a_port, authz_upgrade, args)
        procs.append(current[0])
    finally:
        for p in procs:
            compare.stop(p)
        subprocess.run(["pkill", "-f", tmp], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
