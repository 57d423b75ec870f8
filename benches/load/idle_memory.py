#!/usr/bin/env python3
"""Memory per idle client connection, nginx beside authz-edge (one worker each), on loopback:
the RSS growth of the proxy while N connections that made one request each are held open.

    idle_memory.py --binary target/release/authz-edge [--h1 3000] [--h2 1000]

HTTP/1.1 is plain; HTTP/2 is over TLS with the Python `h2` package (run it with the test
venv's Python, tests/django/.venv/bin/python, which has it).
"""
import argparse
import os
import resource
import socket
import ssl
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
import tls_compare  # noqa: E402


def rss_kib(pids):
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return total


def h1_connection(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    s.recv(65536)
    return s


def h2_connection(port):
    import h2.config
    import h2.connection
    import h2.events
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                       (":path", "/")], end_stream=True)
    s.sendall(c.data_to_send())
    done = False
    while not done:
        for e in c.receive_data(s.recv(65536)):
            done = done or isinstance(e, h2.events.StreamEnded)
        s.sendall(c.data_to_send())
    return s


def per_connection(connect, port, pids, n):
    warm = connect(port)
    time.sleep(0.5)
    before = rss_kib(pids)
    held = [connect(port) for _ in range(n)]
    time.sleep(1)
    after = rss_kib(pids)
    for s in held + [warm]:
        s.close()
    return (after - before) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--h1", type=int, default=3000)
    ap.add_argument("--h2", type=int, default=1000)
    args = ap.parse_args()
    if args.h1 > 10000 or args.h2 > 5000:
        sys.exit("keep runs bounded: --h1 <= 10000, --h2 <= 5000")
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    tmp = tempfile.mkdtemp(prefix="authz-edge-idle-")
    crt, key = tls_compare.cert(tmp)
    procs = []
    try:
        up = compare.free_port()
        procs.append(compare.start_nginx(compare.upstream_conf(tmp, up)))
        compare.wait_port(up)
        def nginx(measure):
            """A fresh nginx for each measurement: memory freed by one must not serve the next."""
            plain, tls = compare.free_port(), compare.free_port()
            conf = compare.nginx_conf(tmp, f"nginx-idle-{plain}", f"""
    upstream django {{ server 127.0.0.1:{up}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{plain};
        listen 127.0.0.1:{tls} ssl http2;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{ proxy_pass http://django; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""", 1)
            with open(conf) as f:
                text = f.read().replace("worker_connections 4096", "worker_connections 16000")
            with open(conf, "w") as f:
                f.write(text)
            p = compare.start_nginx(conf)
            try:
                compare.wait_port(plain)
                time.sleep(0.3)
                return measure(plain, tls, compare.children(p.pid))
            finally:
                compare.stop(p)

        def authz_edge(measure):
            """A fresh authz-edge for each measurement."""
            plain, tls, admin = compare.free_port(), compare.free_port(), compare.free_port()
            aconf = os.path.join(tmp, f"authz-edge-{plain}.toml")
            with open(aconf, "w") as f:
                f.write(f"""[server]
listen = ["127.0.0.1:{plain}"]
admin = "127.0.0.1:{admin}"
threads = 1
upgrade_sock = "{tmp}/up-{plain}.sock"
pid_file = "{tmp}/ae-{plain}.pid"
[tls]
listen = ["127.0.0.1:{tls}"]
cert = "{crt}"
key = "{key}"
[upstream]
servers = ["127.0.0.1:{up}"]
[sink]
type = "none"
""")
            p = subprocess.Popen([args.binary, "--config", aconf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 env={**os.environ, "AUTHZ_EDGE_HASH_KEY": "bench"})
            try:
                compare.wait_port(plain)
                time.sleep(0.3)
                return measure(plain, tls, [p.pid])
            finally:
                compare.stop(p)

        h1 = lambda plain, tls, pids: per_connection(h1_connection, plain, pids, args.h1)  # noqa: E731
        h2 = lambda plain, tls, pids: per_connection(h2_connection, tls, pids, args.h2)  # noqa: E731
        rows = [("nginx 1.22", nginx(h1), nginx(h2)), ("authz-edge", authz_edge(h1), authz_edge(h2))]
        print(f"| proxy | plain HTTP/1.1, KiB per idle connection ({args.h1}) "
              f"| HTTP/2 over TLS, KiB per idle connection ({args.h2}) |\n|---|---|---|")
        for name, h1, h2 in rows:
            print(f"| {name} | {h1:.2f} | {h2:.1f} |")
    finally:
        for p in procs:
            compare.stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
