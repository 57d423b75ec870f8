#!/usr/bin/env python3
"""Checks the deploy/ manifests as far as this machine allows (no cluster, no Docker engine).

- every YAML file parses;
- Kubernetes objects have apiVersion, kind and metadata.name;
- the Deployment has 2+ replicas, readiness on /readyz, a preStop hook, and a termination
  grace period covering preStop + server.grace_period from its ConfigMap;
- the ConfigMap's authz-edge.toml passes `authz-edge check`;
- the Dockerfile's final stage runs as a non-root user;
- `systemd-analyze verify` accepts the unit (when systemd-analyze exists).
Usage: check_manifests.py AUTHZ_EDGE_BINARY
"""
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def problem(msg):
    problems.append(msg)
    print(f"  problem: {msg}")


def duration_seconds(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s.strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def main():
    binary = str(pathlib.Path(sys.argv[1]).resolve())
    docs = {}
    for path in sorted(ROOT.glob("deploy/**/*.y*ml")):
        try:
            docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            print(f"ok: {path.relative_to(ROOT)} parses ({len(docs[path])} document(s))")
        except yaml.YAMLError as e:
            problem(f"{path}: {e}")

    k8s = [d for p, ds in docs.items() if "kubernetes" in p.parts for d in ds]
    for d in k8s:
        for key in ("apiVersion", "kind"):
            if key not in d:
                problem(f"a Kubernetes object has no {key}: {d}")
        if not d.get("metadata", {}).get("name"):
            problem(f"{d.get('kind')} has no metadata.name")
    kinds = {d.get("kind") for d in k8s}
    for wanted in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "PodMonitor"):
        if wanted not in kinds:
            problem(f"no {wanted} in deploy/kubernetes")

    configmap = next((d for d in k8s if d.get("kind") == "ConfigMap"), {})
    toml_text = configmap.get("data", {}).get("authz-edge.toml", "")
    grace = 10
    m = re.search(r'grace_period\s*=\s*"([^"]+)"', toml_text)
    if m:
        grace = duration_seconds(m.group(1)) or grace
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml_text)
    r = subprocess.run([binary, "check", "--config", f.name], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"the ConfigMap's config fails `authz-edge check`:\n{r.stderr}")
    else:
        print("ok: the ConfigMap's authz-edge.toml passes `authz-edge check`")

    dep = next((d for d in k8s if d.get("kind") == "Deployment"), None)
    if dep:
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        if spec.get("replicas", 1) < 2:
            problem("the Deployment has fewer than 2 replicas")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problem("the readiness probe is not /readyz")
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_sleep = int(pre[-1]) if pre and pre[-1].isdigit() else 0
        if not pre:
            problem("no preStop hook")
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        if tgp < pre_sleep + grace + 1:
            problem(f"terminationGracePeriodSeconds {tgp} < preStop {pre_sleep} + grace {grace} + 1")
        else:
            print(f"ok: terminationGracePeriodSeconds {tgp} covers preStop {pre_sleep}s + grace_period {grace}s")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problem("the pod may run as root")

    dockerfile = (ROOT / "deploy/docker/Dockerfile").read_text()
    final = dockerfile.split("FROM ")[-1]
    user = re.search(r"^USER\s+(\S+)", final, re.M)
    if not user or user.group(1).split(":")[0] in ("root", "0"):
        problem("the Dockerfile's final stage does not switch to a non-root USER")
    else:
        print(f"ok: the Dockerfile runs as USER {user.group(1)} (not built here: no Docker engine)")

    unit = ROOT / "deploy/systemd/authz-edge.service"
    if shutil.which("systemd-analyze"):
        with tempfile.TemporaryDirectory() as d:
            copy = pathlib.Path(d) / unit.name
            copy.write_text(unit.read_text().replace("/usr/local/bin/authz-edge", binary))
            r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
            if r.returncode != 0 or r.stderr.strip():
                problem(f"systemd-analyze verify: {r.stderr.strip()}")
            else:
                print("ok: systemd-analyze verify accepts the unit")
    else:
        print("skipped: systemd-analyze is not on this machine")

    if problems:
        sys.exit(f"{len(problems)} problem(s) in deploy/")
    print("deploy/: all checks passed")


if __name__ == "__main__":
    main()
