"""Helpers of tests/k8s: podman with the repository's containers.conf, the
rendered manifests of deploy/, and the few changes a played test must make to
them (image tag, 127.0.0.1 addresses and free ports, PostgreSQL's address).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
PODMAN_ENV = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
HELIOS_BIN = Path(os.environ.get("HELIOS_BIN", ROOT / "build" / "release" / "bin"))
VERSION = re.search(r'#define HELIOS_VERSION "(.*)"',
                    (ROOT / "common" / "cpwire.h").read_text()).group(1)
IMAGE = f"localhost/heliosproxy:{VERSION}"
PG_IMAGE = "localhost/helios-pgtest:15"
OVERLAYS_DIR = ROOT / "deploy" / "overlays"

# the ports the manifests use (the brief's names); a played pod gets free ones
PROXY_PORT, PROXY_ADMIN_PORT, CP_ADMIN_PORT, CP_CONTROL_PORT = 5433, 8432, 8433, 7433


def run(args, *, check=True, timeout=120, env=None, input=None):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       env=env or os.environ, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def podman(*args, check=True, timeout=120):
    return run(["podman", *map(str, args)], check=check, timeout=timeout, env=PODMAN_ENV)


def podman_unusable():
    """Why podman cannot play pods here, or None."""
    reason = os.environ.get("HELIOS_K8S_SKIP")
    if reason:
        return reason
    if shutil.which("podman") is None:
        return "podman is not installed (make deps installs it)"
    if os.geteuid() != 0:
        return "podman kube play runs as root here (rootless podman is not set up)"
    for image, how in ((IMAGE, "make image"), (PG_IMAGE, "scripts/build-image.sh pgtest")):
        if podman("image", "exists", image, check=False).returncode != 0:
            return f"image {image} is not built ({how}; make k8s-check builds both)"
    r = podman("run", "--rm", "--network", "host", "--entrypoint", "/usr/bin/heliosproxy",
               IMAGE, "--version", check=False)
    if r.returncode != 0:
        return "podman cannot run containers here: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overlays():
    if not OVERLAYS_DIR.is_dir():
        return []
    return sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").exists())


def render(path):
    """kubectl kustomize PATH: the objects, in order."""
    r = run(["kubectl", "kustomize", str(path)], timeout=60)
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def http_get(port, path, timeout=2.0):
    """(status, body) of http://127.0.0.1:port/path; (None, error) when it cannot connect."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def wait_for(fn, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def psql(port, sql, *, user, password, db=None, check=True, timeout=30):
    return run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
                "-U", user, "-d", db or user, "-c", sql], check=check, timeout=timeout,
               env=dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5"))


# ---------------------------------------------------------------------------
# adapting rendered manifests to one host

def sub_ports(text, ports):
    """The manifests' ports -> this run's (ports: {manifest port: free port}),
    every listening address -> 127.0.0.1 (host networking: the pods share the
    host's interfaces, the machine's rule is loopback only). Service names stay:
    the pods get them as hostAliases of 127.0.0.1 (TLS checks the name)."""
    text = re.sub(r"0\.0\.0\.0:", "127.0.0.1:", text)
    text = re.sub(r"\[::\]:", "127.0.0.1:", text)
    for old, new in ports.items():
        text = re.sub(rf"(?<![\d.]){old}(?!\d)", str(new), text)
    return text


def replace_nodes(toml_text, nodes):
    """The [[nodes]] tables of a TOML text replaced by nodes ([(name, port, role)])."""
    out, skip = [], False
    for line in toml_text.splitlines():
        s = line.strip()
        if s.startswith("["):
            skip = s == "[[nodes]]"
        if not skip:
            out.append(line)
    for name, port, role in nodes:
        out += ["", "[[nodes]]", f'name = "{name}"', 'host = "127.0.0.1"', f"port = {port}",
                f'role = "{role}"']
    return "\n".join(out) + "\n"


def secret_values(objs):
    """Every Secret's key -> value (stringData or base64 data)."""
    import base64
    vals = {}
    for o in objs:
        if o.get("kind") == "Secret":
            vals.update(o.get("stringData") or {})
            for k, v in (o.get("data") or {}).items():
                vals[k] = base64.b64decode(v).decode()
    return vals


def containers(pod_spec):
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def is_proxy_image(image):
    return "heliosproxy" in (image or "")


def pod_of(obj, name):
    """A Pod object from a Pod, or from a DaemonSet/Deployment's pod template
    (podman kube play does not play the DaemonSet kind)."""
    if obj["kind"] == "Pod":
        pod = json.loads(json.dumps(obj))
    else:
        t = obj["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": dict(t.get("metadata") or {}), "spec": json.loads(json.dumps(t["spec"]))}
    pod["metadata"]["name"] = name
    pod["metadata"].pop("namespace", None)
    return pod


def podman_pod_names(prefix):
    r = podman("pod", "ps", "--format", "{{.Name}}", check=False)
    return [n for n in r.stdout.split() if n.startswith(prefix)]
