"""deploy/ for real: the image of make image runs as user 10001 and says what
it was built with; the manifests rendered with kubectl kustomize (the sidecar
Deployment's pod, the plain DaemonSet's pod template, the helios-cp
Deployment) are played with podman kube play beside PostgreSQL pods (a primary
and its streaming replica, from Debian's postgresql-15), and a client, the
probes, helioctl and a failover go through them. Everything played is removed
at the end, also after a failure. (The schema check of every manifest is
scripts/k8s-validate.py, run by tests/integration/test_k8s_manifests.py.)

Run by make k8s-check (tests/k8s/run.sh builds the images first); the played
tests skip with the reason where podman cannot run containers.
"""

import base64
import json
import os
import re
import time
import tomllib

import pytest
import yaml

from k8s import (CP_ADMIN_PORT, CP_CONTROL_PORT, IMAGE, OVERLAYS_DIR, PG_IMAGE,
                 PROXY_ADMIN_PORT, PROXY_PORT, ROOT, containers, free_port, http_get,
                 is_proxy_image, pod_of, podman, podman_pod_names, podman_unusable,
                 psql, render, replace_nodes, run, secret_values, sub_ports, wait_for)

# Played: overlays sidecar (with helios-cp) and daemonset-plain. Not played:
# daemonset-fastpath, whose XDP program would attach to this shared host's
# interface (tests/integration/test_k8s_manifests.py runs its seccomp profile
# and capabilities instead).


# ---------------------------------------------------------------------------
# the image

@pytest.fixture(scope="module")
def podman_ok():
    reason = podman_unusable()
    if reason:
        pytest.skip(reason)


def test_image_runs_as_helios_and_labels_what_it_was_built_with(podman_ok):
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["/usr/bin/heliosproxy", "-c"]
    assert cfg["Cmd"] == ["/etc/heliosproxy/heliosproxy.toml"]
    labels = cfg["Labels"]
    out = podman("run", "--rm", "--network", "host", "--entrypoint", "/usr/bin/heliosproxy", IMAGE,
                 "--version").stdout
    assert out.startswith("heliosproxy "), out
    features = dict(f.split("=", 1) for f in re.search(r"(?m)^features: (.*)$", out).group(1).split())
    assert labels["io.heliosproxy.bpf"] == ("present" if features["bpf-fastpath"] == "yes" else "absent")
    assert labels["org.opencontainers.image.version"] == out.split()[1]
    for k in ("title", "revision", "source"):
        assert labels[f"org.opencontainers.image.{k}"], k
    # only the three programs of the build, and no shell or package manager
    r = podman("run", "--rm", "--network", "host", "--entrypoint", "/usr/bin/helioctl", IMAGE,
               "--version")
    assert r.stdout.startswith("helioctl ")
    r = podman("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", IMAGE, "-c", "true",
               check=False)
    assert r.returncode != 0, "the image has a shell"
    mnt = podman("image", "mount", IMAGE).stdout.strip()
    try:
        progs = sorted(os.listdir(os.path.join(mnt, "usr/bin")))
        assert progs == ["helioctl", "helios-cp", "heliosproxy"], progs
    finally:
        podman("image", "unmount", IMAGE, check=False)


# ---------------------------------------------------------------------------
# the played pods

class Played:
    """PostgreSQL primary + replica pods, the helios-cp Deployment, the sidecar
    Deployment's pod and the plain DaemonSet's pod template, all on host
    networking with free 127.0.0.1 ports; every name starts with prefix."""

    def __init__(self, work):
        self.prefix = f"h16t{os.getpid()}-"
        self.work = work
        self.files = []
        self.secrets, self.made_secrets = {}, set()
        self.pg_port, self.replica_port = free_port(), free_port()
        self.cp = {CP_CONTROL_PORT: free_port(), CP_ADMIN_PORT: free_port()}
        self.sidecar = {PROXY_PORT: free_port(), PROXY_ADMIN_PORT: free_port(), **self.cp}
        self.daemon = {PROXY_PORT: free_port(), PROXY_ADMIN_PORT: free_port(), **self.cp}

    # -- helpers
    def name(self, n):
        return self.prefix + n

    def play(self, fname, objs):
        path = self.work / fname
        path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
        self.files.append(path)
        return podman("kube", "play", path, timeout=180)

    def containers_of(self, short):
        r = podman("ps", "-a", "--format", "{{.Names}}", check=False)
        return [n for n in r.stdout.split() if n.startswith(self.name(short))
                and not n.endswith("-infra")]

    def pod_logs(self, short):
        return "\n".join(f"--- {n}\n" + podman("logs", "--tail", "80", n, check=False).stdout
                         + podman("logs", "--tail", "80", n, check=False).stderr
                         for n in self.containers_of(short))

    def down(self):
        for f in reversed(self.files):
            podman("kube", "down", f, check=False, timeout=120)
        for pod in podman_pod_names(self.prefix):
            podman("pod", "rm", "-f", "-t", "2", pod, check=False)
        for c in self.containers_of(""):
            podman("rm", "-f", "-t", "2", c, check=False)
        for what in ("volume", "secret"):
            r = podman(what, "ls", "--format", "{{.Name}}", check=False)
            for n in r.stdout.split():
                if n.startswith(self.prefix):
                    podman(what, "rm", n, check=False)

    # -- the manifests, adapted
    def rename_refs(self, obj):
        """ConfigMap/Secret names get the prefix (podman keeps a played
        ConfigMap's volume by name; two plays must not share one)."""
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("configMap", "configMapRef", "configMapKeyRef", "secretRef",
                         "secretKeyRef") and isinstance(v, dict) and "name" in v:
                    v["name"] = self.name(v["name"])
                if k == "secret" and isinstance(v, dict) and "secretName" in v:
                    v["secretName"] = self.name(v["secretName"])
                self.rename_refs(v)
        elif isinstance(obj, list):
            for v in obj:
                self.rename_refs(v)

    def adapt(self, objs, workload, pod_name, ports, *, as_deployment=False, app_port=None):
        """The ConfigMaps and Secrets of objs and one workload, for one play."""
        out = []
        for o in objs:
            if o["kind"] == "Secret":
                self.make_secret(o)
            if o["kind"] != "ConfigMap":
                continue
            o = json.loads(sub_ports(json.dumps(o), ports))
            o["metadata"]["name"] = self.name(o["metadata"]["name"])
            o["metadata"].pop("namespace", None)
            for k, v in (o.get("data") or {}).items():
                if o["kind"] == "ConfigMap" and k.endswith(".toml"):
                    v = replace_nodes(v, [("pg1", self.pg_port, "primary"),
                                          ("pg2", self.replica_port, "replica")])
                    o["data"][k] = dial_loopback(v)
            out.append(o)
        w = json.loads(sub_ports(json.dumps(workload), ports))
        if as_deployment:
            w["metadata"]["name"] = pod_name
            w["metadata"].pop("namespace", None)
            w["spec"]["replicas"] = 1
            spec = w["spec"]["template"]["spec"]
        else:
            w = pod_of(w, pod_name)
            spec = w["spec"]
        spec["hostNetwork"] = True  # no CNI here; see deploy/image/containers.conf
        # a native sidecar (an init container that keeps running) is a plain
        # container to podman 4.3, which waits for init containers to exit
        native = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        for c in native:
            spec["initContainers"].remove(c)
            c.pop("restartPolicy")
        spec["containers"] = native + spec["containers"]
        for c in containers(spec):
            if is_proxy_image(c.get("image")):
                c["image"] = IMAGE
                c["imagePullPolicy"] = "IfNotPresent"
            # with host networking a container port is a host port already;
            # podman 4.3 refuses them ("PortMappings can only be used with
            # Bridge or slirp4netns networking"). Probes name them: numbers.
            named = {p["name"]: p["containerPort"] for p in c.pop("ports", []) if "name" in p}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                for how in ("httpGet", "tcpSocket"):
                    h = (c.get(probe) or {}).get(how)
                    if h and h.get("port") in named:
                        h["port"] = named[h["port"]]
        for c in spec["containers"]:
            if app_port and not is_proxy_image(c.get("image")):
                # the application beside the proxy: its psql loop as the
                # manifest has it, from the PostgreSQL image built here
                c["image"] = PG_IMAGE
                c["imagePullPolicy"] = "IfNotPresent"
        for v in spec.get("volumes") or []:
            if "emptyDir" in v:
                # podman 4.3 makes an emptyDir a named volume of the same
                # name: two pods' "state" would be one folder
                new = f"{pod_name}-{v['name']}"
                for c in containers(spec):
                    for m in c.get("volumeMounts") or []:
                        if m["name"] == v["name"]:
                            m["name"] = new
                v["name"] = new
            if "secret" in v:
                v["hostPath"] = {"path": str(self.secret_dir(v.pop("secret"))), "type": "Directory"}
        self.rename_refs(w)
        return out + [w]

    # podman 4.3.1 and Kubernetes Secrets: a played Secret is stored as YAML,
    # but secretKeyRef reads the podman secret as JSON ("is not valid JSON",
    # containers/podman#16269), and a secret volume crashes kube play (nil
    # pointer in VolumeFromSecret). So the test makes each Secret a podman
    # secret of the JSON form secretKeyRef reads, and a secret volume a
    # read-only host folder with the same files.
    def make_secret(self, o):
        name = self.name(o["metadata"]["name"])
        self.secrets.setdefault(o["metadata"]["name"], o)
        if name in self.made_secrets:
            return
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(o.get("data") or {}))
        podman("secret", "create", name, path)
        self.made_secrets.add(name)

    def secret_dir(self, vol):
        sec = self.secrets[vol["secretName"]]
        d = self.work / f"secretvol-{vol['secretName']}-{len(list(self.work.glob('secretvol-*')))}"
        d.mkdir()
        items = vol.get("items") or [{"key": k, "path": k} for k in sec["data"]]
        for it in items:
            f = d / it["path"]
            f.write_bytes(base64.b64decode(sec["data"][it["key"]]))
            f.chmod(0o444)  # the containers run as 10001
        return d

    def psql(self, port, sql, **kw):
        return psql(port, sql, user=self.user, password=self.password, **kw)

    # -- bring up
    def start(self):
        side = render(OVERLAYS_DIR / "sidecar")
        plain = render(OVERLAYS_DIR / "daemonset-plain")
        allobjs = side + plain
        secrets = secret_values(allobjs)
        conf = tomllib.loads(toml_of(side))
        user = conf["auth"]["users"][0]
        self.user = user["name"]
        self.password = expand(user["password"], secrets)
        self.token = expand(conf.get("control_token", ""), secrets)
        self.failover_secs = conf.get("routing", {}).get("failover_timeout_secs", 10)
        self.service_names = sorted({re.sub(r"^[a-z+]+://|:\d+$", "", conf["control_address"])})
        tls = self.control_tls_secret(allobjs)

        # PostgreSQL: a primary, then its replica
        for role, port in (("primary", self.pg_port), ("replica", self.replica_port)):
            env = [{"name": "PGPORT", "value": str(port)}, {"name": "PG_ROLE", "value": role},
                   {"name": "APP_USER", "value": self.user},
                   {"name": "APP_PASSWORD", "value": self.password},
                   {"name": "REPL_PASSWORD", "value": "repl-pw"},
                   {"name": "PG_PRIMARY_PORT", "value": str(self.pg_port)}]
            self.play(f"pg-{role}.yaml", [{
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.name(f"pg-{role}")},
                "spec": {"hostNetwork": True, "restartPolicy": "Never",
                         "containers": [{"name": "postgres", "image": PG_IMAGE, "env": env}]}}])
            want = "t" if role == "replica" else "f"
            ok = wait_for(lambda: self.psql(port, "SELECT pg_is_in_recovery()", check=False)
                          .stdout.strip() == want, timeout=90, interval=0.5)
            assert ok, self.pod_logs(f"pg-{role}")

        # the control plane
        cp = next(o for o in side if o["kind"] == "Deployment" and any(
            "/usr/bin/helios-cp" in (c.get("command") or []) for c in containers(
                o["spec"]["template"]["spec"])))
        self.play("cp.yaml", self.adapt(tls + side, cp, self.name("cp"), self.cp,
                                                as_deployment=True))
        assert wait_for(lambda: http_get(self.cp[CP_ADMIN_PORT], "/livez")[0] == 200, timeout=30), \
            self.pod_logs("cp")

        # the sidecar Deployment's pod and the DaemonSet's pod template
        app = next(o for o in side if o["kind"] == "Deployment"
                   and any(not is_proxy_image(c.get("image")) for c in containers(
                       o["spec"]["template"]["spec"])))
        self.play("sidecar.yaml", self.adapt(tls + side, app, self.name("sidecar"), self.sidecar,
                                                     app_port=self.sidecar[PROXY_PORT]))
        ds = next(o for o in plain if o["kind"] == "DaemonSet")
        self.play("daemon.yaml", self.adapt(tls + plain, ds, self.name("daemon"), self.daemon))
        for ports, n in ((self.sidecar, "sidecar"), (self.daemon, "daemon")):
            assert wait_for(lambda: http_get(ports[PROXY_ADMIN_PORT], "/readyz")[0] == 200,
                            timeout=30), self.pod_logs(n)

    def control_tls_secret(self, objs):
        """The Secrets a workload mounts that the manifests do not carry: the
        control plane's certificate, which an operator makes with
        deploy/control-tls.sh (for the Service's names)."""
        names = {v.get("secretName") for o in objs for v in walk(o, "secret") if isinstance(v, dict)}
        have = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}
        out = []
        for n in sorted(x for x in names - have if x):
            assert n == "helios-control-tls", f"a Secret {n} nothing makes"
            ns = next(o["metadata"]["namespace"] for o in objs if o["metadata"].get("namespace"))
            r = run(["bash", str(ROOT / "deploy" / "control-tls.sh"), "-n", ns, "-d", "2"])
            sec = yaml.safe_load(r.stdout)
            assert sec["kind"] == "Secret" and sec["metadata"]["name"] == n, sec
            self.ca_dir = self.work / "ca"
            self.ca_dir.mkdir()
            (self.ca_dir / "ca.crt").write_bytes(base64.b64decode(sec["data"]["ca.crt"]))
            sec["metadata"].pop("namespace", None)
            out.append(sec)
        return out

    def helioctl(self, *args, token=True, check=False):
        """helioctl of the image, in a container of its own on the host
        network: the way an operator runs it in a pod (the CA mounted, the
        token from the environment)."""
        env = ["--env", f"HELIOS_CONTROL_TOKEN={self.token}"] if token else []
        return podman("run", "--rm", "--network", "host", "-v", f"{self.ca_dir}:/tls:ro", *env,
                      "--entrypoint", "/usr/bin/helioctl", IMAGE,
                      "-a", f"tls+tcp://127.0.0.1:{self.cp[CP_CONTROL_PORT]}",
                      "--tls-ca", "/tls/ca.crt", "--tls-server-name", self.service_names[0],
                      *args, check=check)


def walk(obj, key):
    """Every value under key anywhere in obj."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v, key)


def toml_of(objs, configmap="heliosproxy"):
    """The data planes' config file (ConfigMap heliosproxy; helios-cp has its own)."""
    return next(o["data"]["heliosproxy.toml"] for o in objs
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap)


def dial_loopback(toml_text):
    """A data plane's control_address that names the helios-cp Service ->
    127.0.0.1 (the played control plane listens there), the name kept as
    control_tls_server_name: the certificate is checked against it. (podman
    4.3 ignores hostAliases with host networking.)"""
    m = re.search(r'(?m)^control_address\s*=\s*"([a-z+]+)://([^":\[\]]+):(\d+)"', toml_text)
    if not m or m.group(2) in ("127.0.0.1", "0.0.0.0", "localhost"):
        return toml_text
    return toml_text.replace(m.group(0), f'control_address = "{m.group(1)}://127.0.0.1:{m.group(3)}"\n'
                                         f'control_tls_server_name = "{m.group(2)}"')


def expand(value, env):
    """"${NAME}" -> env[NAME], as the programs expand it."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], value)


@pytest.fixture(scope="module")
def played(podman_ok, tmp_path_factory):
    t0 = time.monotonic()
    p = Played(tmp_path_factory.mktemp("k8s"))
    try:
        p.start()
        print(f"played setup up in {time.monotonic() - t0:.1f} s")
        yield p
    finally:
        if os.environ.get("HELIOS_K8S_KEEP"):  # a developer looks at the pods
            print(f"HELIOS_K8S_KEEP: pods {p.prefix}* left running; files in {p.work}")
            return
        p.down()
        assert not podman_pod_names(p.prefix), "pods left after the tear-down"


def test_psql_through_the_sidecar_and_the_daemonset_pod_returns_rows(played):
    for ports in (played.sidecar, played.daemon):
        r = played.psql(ports[PROXY_PORT], "SELECT g FROM generate_series(1,3) g")
        assert r.stdout.split() == ["1", "2", "3"], r
    # the application container beside the proxy reaches it on the pod's
    # loopback: its psql -Atc 'SELECT 1' prints 1 (every 10 s)
    app = next(n for n in played.containers_of("sidecar") if n.endswith("-app"))
    assert wait_for(lambda: "1" in podman("logs", app).stdout.split(), timeout=25), \
        played.pod_logs("sidecar")


def test_probes_of_the_played_pods_answer(played):
    for ports in (played.sidecar, played.daemon):
        assert http_get(ports[PROXY_ADMIN_PORT], "/livez")[0] == 200
        st, body = http_get(ports[PROXY_ADMIN_PORT], "/readyz?verbose")
        assert st == 200 and "ok " in body and "fail" not in body, (st, body)
    assert http_get(played.cp[CP_ADMIN_PORT], "/livez")[0] == 200
    # podman maps each liveness probe to a health check (curl -f URL run
    # inside the container: this image has neither curl nor a shell, and
    # without systemd podman never schedules it). The URLs it derived from
    # the manifests are what a kubelet would probe: the test probes them.
    urls = []
    for short in ("sidecar", "daemon", "cp"):
        for n in played.containers_of(short):
            ci = json.loads(podman("container", "inspect", n).stdout)[0]
            assert ci["State"]["Status"] == "running", (n, played.pod_logs(short))
            hc = " ".join((ci["Config"].get("Healthcheck") or {}).get("Test") or [])
            print(f"{n}: podman health check: {hc or 'none'}")
            urls += [(n, u) for u in re.findall(r"http://localhost:(\d+)(/\S*)", hc)]
    assert {n.rsplit("-", 1)[-1] for n, _ in urls} >= {"heliosproxy", "cp"}, urls
    for n, (port, path) in urls:
        assert path == "/livez" and http_get(int(port), path)[0] == 200, (n, port, path)


def test_config_set_through_the_played_control_plane_reaches_both_data_planes(played):
    # a pool exists once a client used it; its size limit is on each data plane's /metrics
    for ports in (played.sidecar, played.daemon):
        played.psql(ports[PROXY_PORT], "SELECT 1")
    r = played.helioctl("config", "set", "pool_mode.max_pool_size", "7")
    assert r.returncode == 0, r

    def limit(ports):
        body = http_get(ports[PROXY_ADMIN_PORT], "/metrics")[1]
        return re.findall(r'(?m)^helios_pool_max_size\{[^}]*\} (\S+)', body)

    for ports in (played.sidecar, played.daemon):
        assert wait_for(lambda: limit(ports) and all(v == "7" for v in limit(ports)), timeout=15), \
            limit(ports)


def test_helioctl_without_the_token_is_refused_on_tls_tcp(played):
    assert played.token, "the manifests set no control_token"
    r = played.helioctl("status", token=False)
    assert r.returncode != 0, r
    assert "token" in (r.stderr + r.stdout).lower(), r
    r = played.helioctl("status")
    assert r.returncode == 0, r


def test_podman_run_of_the_image_with_a_mounted_config_serves_psql(played):
    # the image alone, as `podman run` starts it: ENTRYPOINT + CMD read the
    # mounted file, user 10001 writes only its state_dir
    port, admin = free_port(), free_port()
    conf = played.work / "run.toml"
    conf.write_text(f"""listen_address = "127.0.0.1:{port}"
admin_address = "127.0.0.1:{admin}"
io_backend = "epoll"
state_dir = "/var/lib/heliosproxy"

[[nodes]]
name = "pg1"
host = "127.0.0.1"
port = {played.pg_port}
role = "primary"

[auth]
method = "scram-sha-256"

[[auth.users]]
name = "{played.user}"
password = "${{APP_PASSWORD}}"
""")
    conf.chmod(0o644)
    name = played.name("run")
    podman("run", "-d", "--rm", "--name", name, "--network", "host",
           "--env", f"APP_PASSWORD={played.password}",
           "-v", f"{conf}:/etc/heliosproxy/heliosproxy.toml:ro", IMAGE)
    try:
        r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
            played.psql(port, "SELECT current_user, count(*) FROM generate_series(1,5)",
                        check=False)), timeout=20)
        assert r and r.stdout.strip() == f"{played.user}|5", podman("logs", name, check=False)
        # and the probes answer (the in-process control plane started too)
        assert http_get(admin, "/readyz")[0] == 200
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


def test_failover_keeps_readyz_200_and_queries_reach_the_promoted_replica(played):
    admin = [played.sidecar[PROXY_ADMIN_PORT], played.daemon[PROXY_ADMIN_PORT]]
    assert played.psql(played.sidecar[PROXY_PORT], "SELECT inet_server_port()"
                       ).stdout.strip() == str(played.pg_port)
    podman("pod", "stop", "-t", "2", played.name("pg-primary"))
    t_lost = time.monotonic()
    seen = []
    promoted = False
    # through the failover window and a little after it
    while time.monotonic() - t_lost < played.failover_secs + 3:
        for port in admin:
            st, body = http_get(port, "/readyz?verbose")
            seen.append((round(time.monotonic() - t_lost, 1), port, st, body.strip()))
        if not promoted and time.monotonic() - t_lost > 1.0:
            podman("exec", played.containers_of("pg-replica")[0], "pg_ctl", "promote", "-w",
                   "-D", "/var/lib/postgresql/data")
            promoted = True
        time.sleep(0.25)
    bad = [x for x in seen if x[2] != 200]
    assert not bad, bad[:5]
    # ready because of the window, not because the loss went unnoticed
    for port in admin:
        assert any(x[1] == port and "within failover_timeout_secs" in x[3] for x in seen), \
            [x for x in seen if x[1] == port][:8]
    r = played.psql(played.sidecar[PROXY_PORT], "SELECT inet_server_port(), pg_is_in_recovery()",
                    timeout=played.failover_secs + 20)
    assert r.stdout.strip() == f"{played.replica_port}|f", r
