#!/usr/bin/env python3
"""Checks that every PromQL expression in the Grafana dashboard parses.

Extracts the expressions of every panel target and annotation, replaces Grafana's variables
with concrete values, wraps each as a recording rule, and runs `promtool check rules`.
Usage: check_dashboard.py DASHBOARD.json PROMTOOL
"""
import json
import re
import subprocess
import sys
import tempfile

SUBSTITUTIONS = [
    (r"\$\{route:regex\}", ".*"),
    (r"\$\{instance:regex\}", ".*"),
    (r"\$instance", ".*"),
    (r"\$route", ".*"),
    (r"\$__rate_interval", "5m"),
    (r"\$__interval", "1m"),
    (r"\$__range", "1h"),
]


def expressions(dashboard):
    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []) if t.get("expr"))
            yield from walk(p.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield a["expr"]


def main():
    path, promtool = sys.argv[1], sys.argv[2]
    dashboard = json.load(open(path))
    exprs = list(expressions(dashboard))
    if not exprs:
        sys.exit(f"{path}: no PromQL expressions found")
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        for pattern, value in SUBSTITUTIONS:
            e = re.sub(pattern, value, e)
        if "$" in e:
            sys.exit(f"{path}: unsubstituted variable in: {e}")
        lines.append(f"      - record: dashboard:expr_{i}")
        lines.append(f"        expr: {json.dumps(e)}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    result = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    print(result.stdout.strip() or result.stderr.strip())
    if result.returncode != 0:
        print(result.stderr)
        sys.exit(f"{path}: a dashboard expression does not parse")
    print(f"{path}: {len(exprs)} expressions parse")


if __name__ == "__main__":
    main()
