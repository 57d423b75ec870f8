#!/usr/bin/env python3
"""Writes the differential suite's probe corpora (requests.txt, responses.txt) beside this file.

Each line is `name<TAB>bytes` (requests) or `name<TAB>method<TAB>late<TAB>bytes` (responses),
the bytes escaped as \\r \\n \\t \\\\ and \\xHH. Run it again after editing; the output is committed.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def esc(b: bytes) -> str:
    out = []
    for c in b:
        if c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x09:
            out.append("\\t")
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def req(line, headers, body=b"", host=b"Host: shop.test\r\n"):
    h = b"".join(x + b"\r\n" for x in headers)
    return line + b"\r\n" + (host or b"") + h + b"\r\n" + body


requests = []


def add(name, raw):
    requests.append((name, raw))


# 1. Plain requests every front end forwards.
for m in [b"GET", b"HEAD", b"DELETE", b"OPTIONS"]:
    for v in [b"HTTP/1.1", b"HTTP/1.0"]:
        add(f"plain-{m.decode()}-{v.decode()}", req(m + b" /p/plain HTTP/" + v[5:], []))
for m in [b"POST", b"PUT", b"PATCH"]:
    for v in [b"HTTP/1.1", b"HTTP/1.0"]:
        add(f"plain-{m.decode()}-{v.decode()}", req(m + b" /p/plain " + v, [b"Content-Length: 5"], b"hello"))
add("plain-post-empty", req(b"POST /p/plain HTTP/1.1", [b"Content-Length: 0"]))
add("plain-query", req(b"GET /p/q?a=1&b=%20x HTTP/1.1", []))
add("plain-leading-crlf", b"\r\n" + req(b"GET /p/crlf HTTP/1.1", []))
add("plain-bare-lf-head", b"GET /p/lf HTTP/1.1\nHost: shop.test\n\n")
add("plain-mixed-line-ends", b"GET /p/lf HTTP/1.1\r\nHost: shop.test\nX-A: 1\r\n\r\n")
add("plain-big-body", req(b"POST /p/big HTTP/1.1", [b"Content-Length: 70000"], b"b" * 70000))

# 2. Host.
hosts = {
    "missing-1.1": None,
    "empty": b"Host: ",
    "space-inside": b"Host: shop test",
    "slash": b"Host: shop/test",
    "backslash": b"Host: shop\\test",
    "at": b"Host: user@shop.test",
    "dotdot": b"Host: shop..test",
    "leading-dot": b"Host: .shop.test",
    "port": b"Host: shop.test:8080",
    "bad-port": b"Host: shop.test:80a",
    "long-port": b"Host: shop.test:123456",
    "colon-only": b"Host: :80",
    "ipv6": b"Host: [::1]:80",
    "ipv6-unclosed": b"Host: [::1",
    "ipv6-junk": b"Host: [zz]",
    "underscore": b"Host: shop_test",
    "percent": b"Host: shop%2etest",
    "utf8": b"Host: sh\xc3\xb6p.test",
    "nul": b"Host: shop\x00test",
    "tab-inside": b"Host: shop\ttest",
}
for name, h in hosts.items():
    for m, body in [(b"GET", b""), (b"POST", b"hello")]:
        hs = [b"Content-Length: 5"] if body else []
        add(f"host-{name}-{m.decode()}", req(m + b" /p/host HTTP/1.1", hs, body, host=(h + b"\r\n") if h else b""))
add("host-missing-1.0", req(b"GET /p/host HTTP/1.0", [], host=b""))
add("host-two-same", req(b"GET /p/host HTTP/1.1", [b"Host: shop.test"]))
add("host-two-different", req(b"GET /p/host HTTP/1.1", [b"Host: evil.test"]))
add("host-two-1.0", req(b"GET /p/host HTTP/1.0", [b"Host: evil.test"]))
add("host-absolute-target", req(b"GET http://shop.test/p/host HTTP/1.1", []))
add("host-absolute-other", req(b"GET http://other.test/p/host HTTP/1.1", []))

# 3. Targets and paths.
paths = {
    "dotdot-root": b"/..",
    "dotdot-above": b"/a/../../p",
    "dotdot-inside": b"/a/b/../p",
    "dot-inside": b"/a/./p",
    "enc-dotdot-above": b"/%2e%2e/p",
    "enc-dotdot-upper": b"/%2E%2E/p",
    "enc-mixed-above": b"/.%2e/p",
    "enc-mixed2-above": b"/%2e./p",
    "enc-dotdot-inside": b"/a/%2e%2e/p",
    "enc-dot": b"/%2e/p",
    "dotdot-query": b"/p?x=/../../..",
    "dotdot-trailing": b"/a/..",
    "triple-dot": b"/.../p",
    "enc-slash": b"/a%2fb/p",
    "enc-nul": b"/p%00x",
    "bad-escape-zz": b"/p%zz",
    "bad-escape-short": b"/p%4",
    "bad-escape-end": b"/p%",
    "bad-escape-half": b"/p%g1",
    "enc-upper-ok": b"/p%41%42",
    "double-slash": b"//p//q",
    "fragment": b"/p#frag",
    "backslash": b"/a\\..\\p",
    "utf8": b"/p/\xc3\xa9",
    "high-byte": b"/p/\xff",
    "ctl": b"/p/\x01",
    "del": b"/p/\x7f",
    "semicolon": b"/p;a=b/..;/q",
    "many-slash-dotdot": b"/a//../p",
    "enc-backslash": b"/a%5c..%5cp",
    "enc-dotdot-slash-above": b"/%2e%2e%2fp",
    "tilde": b"/~p",
    "star-path": b"/*",
}
for name, p in paths.items():
    for m in [b"GET", b"POST"]:
        hs = [b"Content-Length: 5"] if m == b"POST" else []
        add(f"path-{name}-{m.decode()}", req(m + b" " + p + b" HTTP/1.1", hs, b"hello" if hs else b""))
targets = {
    "star-get": b"GET *",
    "star-options": b"OPTIONS *",
    "star-post": b"POST *",
    "authority-get": b"GET shop.test:80",
    "authority-connect": b"CONNECT shop.test:443",
    "no-slash": b"GET p/q",
    "empty-ish": b"GET ?a",
    "absolute-http": b"GET http://shop.test/p/abs",
    "absolute-https": b"GET https://shop.test/p/abs",
    "absolute-upper": b"GET HTTP://shop.test/p/abs",
    "absolute-noslash": b"GET http://shop.test",
    "absolute-query": b"GET http://shop.test?x",
    "absolute-ftp": b"GET ftp://shop.test/p",
    "absolute-userinfo": b"GET http://u@shop.test/p",
    "absolute-dotdot": b"GET http://shop.test/../p",
    "absolute-empty-host": b"GET http:///p",
    "absolute-port": b"GET http://shop.test:8080/p",
    "absolute-badport": b"GET http://shop.test:x/p",
}
for name, line in targets.items():
    add(f"target-{name}", req(line + b" HTTP/1.1", []))

# 4. Methods.
for m in [b"TRACE", b"TRACK", b"get", b"Get", b"FOO", b"PROPFIND", b"LOCK", b"MKCOL", b"G@T", b"GE T", b"PURGE", b"BREW"]:
    add(f"method-{esc(m)}", req(m + b" /p/method HTTP/1.1", []))
add("method-empty", req(b" /p/method HTTP/1.1", []))
add("method-long", req(b"A" * 40 + b" /p/method HTTP/1.1", []))

# 5. Versions and request lines.
for name, line in {
    "1.2": b"GET /p/v HTTP/1.2",
    "2.0": b"GET /p/v HTTP/2.0",
    "0.9": b"GET /p/v",
    "lower": b"GET /p/v http/1.1",
    "trailing-space": b"GET /p/v HTTP/1.1 ",
    "two-spaces": b"GET  /p/v HTTP/1.1",
    "tab-sep": b"GET\t/p/v\tHTTP/1.1",
    "leading-space": b" GET /p/v HTTP/1.1",
    "digits-10": b"GET /p/v HTTP/10.1",
    "v-3.0": b"GET /p/v HTTP/3.0",
    "no-version-slash": b"GET /p/v HTTP1.1",
    "extra-token": b"GET /p/v HTTP/1.1 x",
}.items():
    add(f"line-{name}", req(line, []))

# 6. Header syntax.
hdrs = {
    "space-before-colon": b"X-A : 1",
    "tab-before-colon": b"X-A\t: 1",
    "obs-fold": b"X-A: 1\r\n folded",
    "obs-fold-tab": b"X-A: 1\r\n\tfolded",
    "no-colon": b"X-A 1",
    "empty-name": b": 1",
    "paren-name": b"X(A): 1",
    "space-name": b"X A: 1",
    "at-name": b"X@A: 1",
    "nul-value": b"X-A: 1\x00 2",
    "cr-value": b"X-A: 1\r2",
    "ctl-value": b"X-A: 1\x01",
    "del-value": b"X-A: 1\x7f",
    "utf8-value": b"X-A: caf\xc3\xa9",
    "high-value": b"X-A: \xff",
    "empty-value": b"X-A:",
    "no-space-value": b"X-A:1",
    "underscore-name": b"X_Forwarded_For: 6.6.6.6",
    "long-value": b"X-A: " + b"v" * 40000,
    "first-line-fold": b" X-A: 1",
    "colon-in-name-ish": b"X-A:: 1",
    "utf8-name": b"X-\xc3\xa9: 1",
}
for name, h in hdrs.items():
    for m in [b"GET", b"POST"]:
        hs = [h] + ([b"Content-Length: 5"] if m == b"POST" else [])
        add(f"header-{name}-{m.decode()}", req(m + b" /p/header HTTP/1.1", hs, b"hello" if m == b"POST" else b""))
add("header-too-many", req(b"GET /p/header HTTP/1.1", [b"X-N%d: 1" % i for i in range(150)]))
add("header-many-ok", req(b"GET /p/header HTTP/1.1", [b"X-N%d: 1" % i for i in range(60)]))
add("header-long-uri", req(b"GET /p/" + b"u" * 9000 + b" HTTP/1.1", []))

# 7. Content-Length.
cls = {
    "dup-same": [b"Content-Length: 5", b"Content-Length: 5"],
    "dup-diff": [b"Content-Length: 5", b"Content-Length: 6"],
    "list-same": [b"Content-Length: 5, 5"],
    "list-diff": [b"Content-Length: 5, 6"],
    "negative": [b"Content-Length: -5"],
    "plus": [b"Content-Length: +5"],
    "hex": [b"Content-Length: 0x5"],
    "leading-zeros": [b"Content-Length: 005"],
    "space-inside": [b"Content-Length: 5 5"],
    "trailing-space": [b"Content-Length: 5 "],
    "empty": [b"Content-Length: "],
    "overflow": [b"Content-Length: 99999999999999999999999"],
    "over-limit": [b"Content-Length: 20000000"],
    "underscore": [b"Content_Length: 5"],
    "space-before-colon": [b"Content-Length : 5"],
    "upper": [b"CONTENT-LENGTH: 5"],
    "with-te-identity": [b"Content-Length: 5", b"Transfer-Encoding: identity"],
}
for name, hs in cls.items():
    add(f"cl-{name}", req(b"POST /p/cl HTTP/1.1", hs, b"hello"))
add("cl-get-with-body", req(b"GET /p/cl HTTP/1.1", [b"Content-Length: 5"], b"hello"))
add("cl-head-with-body", req(b"HEAD /p/cl HTTP/1.1", [b"Content-Length: 5"], b"hello"))

# 8. Transfer-Encoding (request bodies).
chunk = b"5\r\nhello\r\n0\r\n\r\n"
tes = {
    "chunked": ([b"Transfer-Encoding: chunked"], chunk),
    "chunked-upper": ([b"Transfer-Encoding: CHUNKED"], chunk),
    "chunked-twice-list": ([b"Transfer-Encoding: chunked, chunked"], chunk),
    "gzip-chunked": ([b"Transfer-Encoding: gzip, chunked"], chunk),
    "identity": ([b"Transfer-Encoding: identity"], b"hello"),
    "xchunked": ([b"Transfer-Encoding: xchunked"], chunk),
    "chunked-space": ([b"Transfer-Encoding:  chunked "], chunk),
    "two-lines": ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], chunk),
    "tab": ([b"Transfer-Encoding:\tchunked"], chunk),
    "underscore": ([b"Transfer_Encoding: chunked"], chunk),
    "vtab": ([b"Transfer-Encoding: \x0bchunked"], chunk),
    "with-cl": ([b"Transfer-Encoding: chunked", b"Content-Length: 3"], chunk),
    "cl-first": ([b"Content-Length: 3", b"Transfer-Encoding: chunked"], chunk),
    "bare-lf-size": ([b"Transfer-Encoding: chunked"], b"5\nhello\r\n0\r\n\r\n"),
    "bare-lf-data": ([b"Transfer-Encoding: chunked"], b"5\r\nhello\n0\r\n\r\n"),
    "ext": ([b"Transfer-Encoding: chunked"], b"5;a=b\r\nhello\r\n0\r\n\r\n"),
    "ext-lf": ([b"Transfer-Encoding: chunked"], b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    "size-space": ([b"Transfer-Encoding: chunked"], b"5 \r\nhello\r\n0\r\n\r\n"),
    "size-leading-space": ([b"Transfer-Encoding: chunked"], b" 5\r\nhello\r\n0\r\n\r\n"),
    "size-hex-prefix": ([b"Transfer-Encoding: chunked"], b"0x5\r\nhello\r\n0\r\n\r\n"),
    "size-negative": ([b"Transfer-Encoding: chunked"], b"-5\r\nhello\r\n0\r\n\r\n"),
    "size-overflow": ([b"Transfer-Encoding: chunked"], b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "size-underscore": ([b"Transfer-Encoding: chunked"], b"5_0\r\nhello\r\n0\r\n\r\n"),
    "data-long": ([b"Transfer-Encoding: chunked"], b"3\r\nhello\r\n0\r\n\r\n"),
    "trailers": ([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    "trailer-authz": ([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-Authz-User: 1\r\n\r\n"),
    "big": ([b"Transfer-Encoding: chunked"], b"".join(b"%x\r\n%s\r\n" % (4096, b"c" * 4096) for _ in range(20)) + b"0\r\n\r\n"),
    "http10": ([b"Transfer-Encoding: chunked"], chunk),
}
for name, (hs, body) in tes.items():
    line = b"POST /p/te HTTP/1.0" if name == "http10" else b"POST /p/te HTTP/1.1"
    add(f"te-{name}", req(line, hs, body))

# 9. Smuggling shapes: a second request hidden in the first one's body.
smug = b"GET /p/smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n"
add("smuggle-cl-te", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 6", b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + smug))
add("smuggle-te-cl", req(b"POST /p/s HTTP/1.1", [b"Transfer-Encoding: chunked", b"Content-Length: 4"], b"5c\r\n" + smug + b"\r\n0\r\n\r\n"))
add("smuggle-te-te-space", req(b"POST /p/s HTTP/1.1", [b"Transfer-Encoding : chunked", b"Content-Length: 4"], b"5c\r\n" + smug + b"\r\n0\r\n\r\n"))
add("smuggle-te-te-obf", req(b"POST /p/s HTTP/1.1", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: x"], b"0\r\n\r\n" + smug))
add("smuggle-cl-cl", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 0", b"Content-Length: 44"], smug))
add("smuggle-fold-te", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 0", b"X: 1\r\n Transfer-Encoding: chunked"], smug))
add("smuggle-lf-te", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 0\nTransfer-Encoding: chunked"], smug))
add("smuggle-cr-te", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 0\rTransfer-Encoding: chunked"], smug))
add("smuggle-get-body", req(b"GET /p/s HTTP/1.1", [b"Content-Length: 44"], smug))
add("smuggle-chunk-ext", req(b"POST /p/s HTTP/1.1", [b"Transfer-Encoding: chunked"], b"2;\n0\r\n\r\nxx\r\n0\r\n\r\n" + smug))
add("smuggle-pipelined-ok", req(b"GET /p/first HTTP/1.1", []) + smug)
add("smuggle-head-cl", req(b"HEAD /p/s HTTP/1.1", [b"Content-Length: 44"], smug))
add("smuggle-0.9", b"GET /p/s\r\n\r\n" + smug)
add("smuggle-expect", req(b"POST /p/s HTTP/1.1", [b"Content-Length: 5", b"Expect: 100-continue"], b"hello") + smug)
add("smuggle-upgrade-h2c", req(b"GET /p/s HTTP/1.1", [b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]) + smug)
add("smuggle-te-http10", req(b"POST /p/s HTTP/1.0", [b"Transfer-Encoding: chunked", b"Content-Length: 44"], smug))

# 10. Context headers from the client.
for name, h in {
    "user": b"X-Authz-User: 1",
    "session": b"X-Authz-Session: abc",
    "route": b"X-Authz-Route: /admin/",
    "perm": b"X-Authz-Permission: auth.superuser",
    "lower": b"x-authz-user: 1",
    "underscore": b"X_Authz_User: 1",
    "mixed-underscore": b"X-Authz_User: 1",
    "unknown-suffix": b"X-Authz-Anything: 1",
    "release": b"X-App-Release: fake",
    "connection-listed": b"Connection: X-Authz-User",
}.items():
    add(f"context-{name}", req(b"GET /p/ctx HTTP/1.1", [h]))
    add(f"context-{name}-post", req(b"POST /p/ctx HTTP/1.1", [h, b"Content-Length: 5"], b"hello"))

# 11. Connection, Expect, Upgrade.
for name, hs, body in [
    ("expect-continue", [b"Expect: 100-continue", b"Content-Length: 5"], b"hello"),
    ("expect-other", [b"Expect: teapot", b"Content-Length: 5"], b"hello"),
    ("expect-get", [b"Expect: 100-continue"], b""),
    ("conn-close", [b"Connection: close"], b""),
    ("conn-keepalive", [b"Connection: keep-alive"], b""),
    ("conn-list-host", [b"Connection: Host"], b""),
    ("conn-list-xff", [b"Connection: X-Forwarded-For", b"X-Forwarded-For: 6.6.6.6"], b""),
    ("upgrade-no-conn", [b"Upgrade: websocket"], b""),
    ("upgrade-ws", [b"Connection: Upgrade", b"Upgrade: websocket", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"], b""),
    ("proxy-connection", [b"Proxy-Connection: keep-alive"], b""),
    ("te-trailers", [b"TE: trailers"], b""),
    ("keep-alive-hdr", [b"Keep-Alive: timeout=5"], b""),
    ("xff-spoof", [b"X-Forwarded-For: 6.6.6.6", b"X-Real-IP: 6.6.6.6", b"X-Forwarded-Proto: https"], b""),
    ("forwarded", [b"Forwarded: for=6.6.6.6"], b""),
    ("request-id", [b"X-Request-Id: abc-123"], b""),
    ("request-id-bad", [b"X-Request-Id: a b\x01"], b""),
]:
    add(f"conn-{name}", req(b"POST /p/conn HTTP/1.1" if body else b"GET /p/conn HTTP/1.1", hs, body))

with open(os.path.join(HERE, "requests.txt"), "w") as f:
    f.write("# Request-side probes for tests/differential.rs (written by gen_corpus.py).\n")
    for name, raw in requests:
        f.write(f"{name}\t{esc(raw)}\n")

# ---- responses: the recording upstream answers a probe request with these bytes ----
responses = []


def radd(name, raw, method="GET", late=b""):
    responses.append((name, method, late, raw))


ok = b"HTTP/1.1 200 OK\r\n"
radd("ok-length", ok + b"Content-Length: 5\r\n\r\nhello")
radd("ok-chunked", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("ok-chunked-many", ok + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefghij") + b"0\r\n\r\n")
radd("ok-close-delimited", ok + b"Connection: close\r\n\r\nhello")
radd("ok-no-reason", b"HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello")
radd("ok-http10", b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
radd("ok-204", b"HTTP/1.1 204 No Content\r\n\r\n")
radd("ok-304", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
radd("ok-head", ok + b"Content-Length: 5\r\n\r\n", method="HEAD")
radd("ok-403", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden")
radd("ok-401", b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 4\r\n\r\nauth")
radd("ok-empty-length", ok + b"Content-Length: 0\r\n\r\n")
radd("ok-large-head", ok + b"X-Big: " + b"v" * 20000 + b"\r\nContent-Length: 2\r\n\r\nok")
radd("ok-set-cookies", ok + b"".join(b"Set-Cookie: c%d=v\r\n" % i for i in range(20)) + b"Content-Length: 2\r\n\r\nok")
radd("ok-utf8-header", ok + b"X-Name: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok")
radd("ok-chunk-ext", ok + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n")
radd("ok-chunk-upper-hex", ok + b"Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n")
radd("ok-te-upper", ok + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("ok-length-spaces", ok + b"Content-Length:  5 \r\n\r\nhello")
# Framing.
radd("cl-dup-same", ok + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
radd("cl-dup-diff", ok + b"Content-Length: 5\r\nContent-Length: 3\r\n\r\nhello")
radd("cl-list", ok + b"Content-Length: 5, 5\r\n\r\nhello")
radd("cl-negative", ok + b"Content-Length: -1\r\n\r\nhello")
radd("cl-plus", ok + b"Content-Length: +5\r\n\r\nhello")
radd("cl-hex", ok + b"Content-Length: 0x5\r\n\r\nhello")
radd("cl-empty", ok + b"Content-Length: \r\n\r\nhello")
radd("cl-overflow", ok + b"Content-Length: 99999999999999999999999\r\n\r\nhello")
radd("cl-and-te", ok + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("te-and-cl", ok + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("te-two-lines", ok + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("te-gzip-chunked", ok + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("te-identity", ok + b"Transfer-Encoding: identity\r\n\r\nhello")
radd("te-xchunked", ok + b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("te-chunked-chunked", ok + b"Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
# Status lines.
for name, line in {
    "status-000": b"HTTP/1.1 000 Zero",
    "status-099": b"HTTP/1.1 099 Low",
    "status-600": b"HTTP/1.1 600 High",
    "status-999": b"HTTP/1.1 999 High",
    "status-two-digits": b"HTTP/1.1 20 OK",
    "status-four-digits": b"HTTP/1.1 2000 OK",
    "status-letters": b"HTTP/1.1 2x0 OK",
    "status-http2": b"HTTP/2 200 OK",
    "status-http11-lower": b"http/1.1 200 OK",
    "status-icy": b"ICY 200 OK",
    "status-http12": b"HTTP/1.2 200 OK",
    "status-no-space": b"HTTP/1.1200 OK",
    "status-reason-ctl": b"HTTP/1.1 200 O\x01K",
    "status-junk": b"hello world",
}.items():
    radd(name, line + b"\r\nContent-Length: 5\r\n\r\nhello")
# Interim responses.
radd("interim-100", b"HTTP/1.1 100 Continue\r\n\r\n" + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-103", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-103-authz", b"HTTP/1.1 103 Early Hints\r\nX-Authz-User: 7\r\n\r\n" + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-102", b"HTTP/1.1 102 Processing\r\n\r\n" + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
radd("interim-150", b"HTTP/1.1 150 Odd\r\n\r\n" + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-many-100", b"HTTP/1.1 100 Continue\r\n\r\n" * 12 + ok + b"Content-Length: 5\r\n\r\nhello")
radd("interim-100-only", b"HTTP/1.1 100 Continue\r\n\r\n")
# Header syntax.
radd("hdr-obs-fold", ok + b"X-A: 1\r\n folded\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-obs-fold-cl", ok + b"X-A: 1\r\nContent-Length:\r\n 5\r\n\r\nhello")
radd("hdr-space-before-colon", ok + b"X-A : 1\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-space-before-colon-cl", ok + b"Content-Length : 5\r\n\r\nhello")
radd("hdr-no-colon", ok + b"X-A 1\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-empty-name", ok + b": 1\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-nul-value", ok + b"X-A: 1\x002\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-cr-value", ok + b"X-A: 1\r2\r\nContent-Length: 5\r\n\r\nhello")
radd("hdr-bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello")
radd("hdr-huge", ok + b"X-Big: " + b"v" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok")
radd("hdr-too-many", ok + b"".join(b"X-N%d: 1\r\n" % i for i in range(300)) + b"Content-Length: 2\r\n\r\nok")
radd("hdr-underscore-cl", ok + b"Content_Length: 5\r\nConnection: close\r\n\r\nhello")
radd("hdr-paren-name", ok + b"X(A): 1\r\nContent-Length: 5\r\n\r\nhello")
# Context headers in responses.
for name, h in {
    "user": b"X-Authz-User: 7",
    "session": b"X-Authz-Session: s",
    "route": b"X-Authz-Route: /a/",
    "perm": b"X-Authz-Permission: shop.view",
    "release": b"X-App-Release: r9",
    "lower": b"x-authz-user: 7",
    "underscore": b"X_Authz_User: 7",
    "suffix": b"X-Authz-Whatever: 7",
}.items():
    radd(f"ctx-{name}", ok + h + b"\r\nContent-Length: 5\r\n\r\nhello")
    radd(f"ctx-{name}-chunked", ok + h + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
radd("ctx-trailer", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Authz-User: 7\r\n\r\n")
radd("ctx-trailer-lower", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-authz-session: s\r\nX-Other: 1\r\n\r\n")
radd("ctx-trailer-release", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-App-Release: r9\r\n\r\n")
radd("ctx-403", b"HTTP/1.1 403 Forbidden\r\nX-Authz-User: 7\r\nX-Authz-Permission: shop.view\r\nContent-Length: 9\r\n\r\nforbidden")
# Bodies: extra bytes and bad chunking.
radd("extra-after-length", ok + b"Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
radd("extra-after-chunked", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
radd("extra-after-204", b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
radd("body-after-204", b"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\nforged")
radd("body-after-304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\nforged")
radd("body-after-head", ok + b"Content-Length: 6\r\n\r\nforged", method="HEAD")
late_forged = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
radd("late-after-length", ok + b"Content-Length: 5\r\n\r\nhello", late=late_forged)
radd("late-after-204", b"HTTP/1.1 204 No Content\r\n\r\n", late=late_forged)
radd("late-after-304", b"HTTP/1.1 304 Not Modified\r\n\r\n", late=b"forged")
radd("late-after-head", ok + b"Content-Length: 6\r\n\r\n", method="HEAD", late=b"forged")
radd("late-408", ok + b"Content-Length: 5\r\n\r\nhello", late=b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
radd("late-after-chunked", ok + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", late=late_forged)
radd("short-body-close", ok + b"Content-Length: 50\r\nConnection: close\r\n\r\nhello")
for name, body in {
    "bare-lf-size": b"5\nhello\r\n0\r\n\r\n",
    "bare-lf-data": b"5\r\nhello\n0\r\n\r\n",
    "ext-lf": b"5;a\nb\r\nhello\r\n0\r\n\r\n",
    "size-junk": b"zz\r\nhello\r\n0\r\n\r\n",
    "size-negative": b"-5\r\nhello\r\n0\r\n\r\n",
    "size-leading-space": b" 5\r\nhello\r\n0\r\n\r\n",
    "size-overflow": b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "data-long": b"3\r\nhello\r\n0\r\n\r\n",
    "data-short": b"7\r\nhello\r\n0\r\n\r\n",
    "empty-size": b"\r\nhello\r\n0\r\n\r\n",
    "trailer-bare-lf": b"5\r\nhello\r\n0\r\nX: 1\n\r\n",
    "no-last-chunk": b"5\r\nhello\r\n",
}.items():
    radd(f"chunk-{name}", ok + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)

with open(os.path.join(HERE, "responses.txt"), "w") as f:
    f.write("# Response-side probes for tests/differential.rs (written by gen_corpus.py).\n")
    for name, method, late, raw in responses:
        f.write(f"{name}\t{method}\t{esc(late)}\t{esc(raw)}\n")

print(len(requests), "request probes,", len(responses), "response probes")
