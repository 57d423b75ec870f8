"""The authz-edge demo: Django under gunicorn with the companion, the proxy in front, and a
story played as traffic: normal use, a deploy whose migration was not run, then the fix.

    python demo/story.py --proxy target/debug/authz-edge [--fast]
        [--browser chromium --screenshot PATH]

It prints the console's URL; the console shows the spike and the finding within a minute, and
the finding closing after the fix. Ctrl-C stops everything. With --browser, it stops once the
finding is open and checks the console in headless Chromium instead (CI's browser test): the
rendered page must show the route, the finding, the release and a chart; a screenshot is saved.
"""

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "django"
PY = sys.executable
ROUTE = "/reports/<int:pk>/approve/"
USERS = [("alice", "alice-pw"), ("bob", "bob-pw")] + [(f"u{i}", "pw") for i in range(1, 5)]

procs = []
stop = threading.Event()
temp_dirs = []


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args):
    subprocess.run([PY, "manage.py", *args], cwd=APP, env=env, check=True, stdout=subprocess.DEVNULL)


def gunicorn(env, port):
    p = subprocess.Popen(
        [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
         "--log-level", "warning", "testproj.wsgi:application"],
        cwd=APP, env=env, start_new_session=True)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return p


def wait_http(url, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


class User:
    """A browser: a cookie jar, logged in through the proxy with Django's CSRF-protected form."""

    def __init__(self, base, name, password):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())
        page = self.get("/accounts/login/")[1]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = f"username={name}&password={password}&csrfmiddlewaretoken={token}".encode()
        self.request("POST", "/accounts/login/", body, {
            "Content-Type": "application/x-www-form-urlencoded", "Origin": base})

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def console(admin):
    with urllib.request.urlopen(f"http://{admin}/debug/console", timeout=5) as r:
        return json.load(r)


def traffic(users, approve, pace):
    """Everyone browses; everyone tries the approve page when it exists."""
    alice, bob = users[0], users[1]
    alice.get("/reports/1/export/")
    bob.get("/")
    if approve:
        for u in users:
            u.get(f"/reports/{1 + int(time.time()) % 3}/approve/")
    time.sleep(pace)


def play(seconds, users, approve, pace, until=None):
    end = time.time() + seconds
    while time.time() < end and not stop.is_set():
        traffic(users, approve, pace)
        if until and until():
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", default=str(ROOT / "target" / "debug" / "authz-edge"))
    ap.add_argument("--fast", action="store_true", help="shorter phases")
    ap.add_argument("--browser", help="check the console with this headless Chromium, then stop")
    ap.add_argument("--screenshot", default=str(ROOT / "target" / "console.png"))
    args = ap.parse_args()
    fast = args.fast or args.browser
    tmp = Path(tempfile.mkdtemp(prefix="authz-edge-demo-"))
    temp_dirs.append(tmp)
    env = dict(os.environ, DJANGO_DB_PATH=str(tmp / "db.sqlite3"), STATIC_ROOT=str(tmp / "static"),
               AUTHZ_COMPANION="1", APP_RELEASE="v1", MEDIA_ROOT=str(tmp / "media"))
    say("Django: migrating the example app and creating its users")
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "e2e_setup")
    manage(env, "collectstatic", "--noinput", "-v", "0")
    v1_port, http_port, admin_port = free_port(), free_port(), free_port()
    gunicorn(env, v1_port)
    cfg = tmp / "authz-edge.toml"

    def write_config(upstream):
        cfg.write_text(f"""[server]
listen = ["127.0.0.1:{http_port}"]
admin = "127.0.0.1:{admin_port}"
grace_period = "1s"
upgrade_sock = "{tmp}/upgrade.sock"
pid_file = "{tmp}/authz-edge.pid"
[upstream]
servers = ["127.0.0.1:{upstream}"]
[sink]
type = "file"
path = "{tmp}/diagnostics.jsonl"
""")

    write_config(v1_port)
    proxy = subprocess.Popen([args.proxy, "--config", str(cfg)],
                             env=dict(os.environ, AUTHZ_EDGE_HASH_KEY="demo-key"),
                             stdout=subprocess.DEVNULL, stderr=open(tmp / "proxy.log", "w"),
                             start_new_session=True)
    procs.append(proxy)
    wait_http(f"http://127.0.0.1:{admin_port}/healthz")
    base, admin = f"http://127.0.0.1:{http_port}", f"127.0.0.1:{admin_port}"
    say(f"console: http://{admin}/   (the proxy: {base}, Django v1 behind it)")
    users = [User(base, n, p) for n, p in USERS]

    say("1/3 normal traffic on release v1")
    play(8 if fast else 30, users, False, 0.1)

    say("2/3 deploy v2: a new report permission, and nobody ran `manage.py migrate`")
    env2 = dict(env, APP_RELEASE="v2", REPORTS_V2="1")
    v2_port = free_port()
    gunicorn(env2, v2_port)
    write_config(v2_port)
    proxy.send_signal(signal.SIGHUP)

    def opened():
        return any(f["cause"] == "permission_not_migrated" and f["active"] for f in console(admin)["findings"])

    if not play(60, users, True, 0.1, until=opened):
        raise SystemExit("no finding within a minute")
    f = next(f for f in console(admin)["findings"] if f["active"])
    say(f"finding: {f['cause']} on {f['route']}: {f['fix']}")
    if not args.browser:
        # The incident holds, for a person to look at the console: until Enter, or 60 s.
        enter = threading.Event()
        if sys.stdin.isatty():
            say("the incident goes on: look at the console, then press Enter for the fix "
                "(it comes by itself in 60 s)")
            threading.Thread(target=lambda: (sys.stdin.readline(), enter.set()), daemon=True).start()
        else:
            say("the incident goes on for 60 s, then the fix")
        play(60, users, True, 0.1, until=enter.is_set)
    if args.browser:
        # Some more of the incident, so that the chart has a shape.
        play(12, users, True, 0.1)
        return check_console(args, admin, tmp)

    say("3/3 the fix: `manage.py migrate`, and the approvers get the permission")
    manage(env2, "migrate", "--noinput", "-v", "0")
    subprocess.run([PY, "manage.py", "shell", "-v", "0", "-c",
                    "from django.contrib.auth.models import Permission, User\n"
                    "p = Permission.objects.get(codename='approve_report')\n"
                    "[u.user_permissions.add(p) for u in User.objects.all()]"],
                   cwd=APP, env=env2, check=True, stdout=subprocess.DEVNULL)

    def closed():
        return not any(f["active"] for f in console(admin)["findings"])

    play(90, users, True, 0.1, until=closed)
    say("the finding closed: denials stopped. Ctrl-C to stop the demo; traffic goes on meanwhile")
    while not stop.is_set():
        play(5, users, True, 0.2)


def check_console(args, admin, tmp):
    """CI's browser test: the rendered console shows the route, the finding, the release, a chart."""
    profile = tmp / "chromium-profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--window-size=1000,720"]
    url = f"http://{admin}/"
    dom = subprocess.run([args.browser, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    shot = Path(args.screenshot)
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.browser, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    checks = {
        "the page loaded its data": 'data-loaded="1"' in dom,
        "the route": f'data-route="{ROUTE}"'.replace("<", "&lt;").replace(">", "&gt;") in dom,
        "the finding": 'data-cause="permission_not_migrated"' in dom and "manage.py migrate" in dom,
        "the release": '<b id="release">v2</b>' in dom,
        "a chart": '<path class="rate" d="M' in dom,
        "a spike": 'class="badge spike"' in dom,
        "a screenshot": shot.exists() and shot.stat().st_size > 10_000,
    }
    for what, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not all(checks.values()):
        (shot.parent / "console-dom.html").write_text(dom)
        raise SystemExit(f"the console check failed; DOM in {shot.parent / 'console-dom.html'}")
    say(f"console checked in {args.browser}; screenshot: {shot}")


def shutdown(*_):
    """Stops the proxy (SIGINT: at once) and each gunicorn with its workers (its own process
    group), waiting for each."""
    stop.set()
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        main()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        shutdown()
        # Nothing is left in the temp directory (the screenshot is under target/).
        for d in temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
