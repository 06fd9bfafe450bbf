"""The Kubernetes manifests in deploy/ without a cluster: every overlay renders
and passes scripts/k8s-validate.py (schema of python3-kubernetes' models,
references, ${VAR}s, heliosproxy --check-config), the validator catches
what it claims to, and the fast path's seccomp profile lets heliosproxy run
io_uring and the BPF splice with only the capabilities the DaemonSet grants.

Needs kubectl (kustomize) and python3-kubernetes; the PostgreSQL cluster only
for the seccomp tests."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, helios_bin, wait_for

VALIDATE = ROOT / "scripts" / "k8s-validate.py"
DEPLOY = ROOT / "deploy"
PROFILE = DEPLOY / "seccomp" / "heliosproxy-io_uring.json"
OVERLAYS = ["daemonset-plain", "daemonset-fastpath", "sidecar"]


def need_tools():
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is missing (make deps installs kubernetes-client)")
    r = subprocess.run([sys.executable, "-c", "import kubernetes.client"], capture_output=True)
    if r.returncode != 0:
        pytest.fail("python3-kubernetes is missing (make deps)")


def validate(*paths, check_config=True):
    need_tools()
    cmd = [sys.executable, str(VALIDATE)]
    if check_config:
        cmd += ["--heliosproxy", str(helios_bin() / "heliosproxy")]
    else:
        cmd += ["--no-check-config"]
    r = subprocess.run(cmd + [str(p) for p in paths], capture_output=True, text=True,
                       timeout=300)
    return r


def render(path):
    r = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True,
                       check=True)
    return [o for o in yaml.safe_load_all(r.stdout) if o]


def find(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert hits, f"no {kind}/{name} in {[(o['kind'], o['metadata']['name']) for o in objs]}"
    return hits[0]


@pytest.fixture
def deploy_copy(tmp_path):
    """A copy of deploy/ to break on purpose."""
    d = tmp_path / "deploy"
    shutil.copytree(DEPLOY, d)
    return d


def edit_yaml(path, change):
    docs = list(yaml.safe_load_all(path.read_text()))
    change(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def container(doc, name):
    return next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name)


# ---------------------------------------------------------------- deploy/ as it is

def test_every_manifest_in_deploy_renders_and_passes_the_schema_and_config_checks():
    r = validate(DEPLOY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""
    # not vacuous: the overlays were rendered and their objects checked
    m = re.search(r"(\d+) sources, (\d+) objects, 0 problems", r.stderr)
    assert m, r.stderr
    assert int(m.group(1)) >= len(OVERLAYS) and int(m.group(2)) >= 25, r.stderr


def test_the_overlays_hold_what_docs_kubernetes_md_says():
    plain = render(DEPLOY / "overlays" / "daemonset-plain")
    ds = find(plain, "DaemonSet", "heliosproxy")["spec"]["template"]["spec"]
    c = ds["containers"][0]
    assert ds["securityContext"]["runAsNonRoot"] is True
    assert ds["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert not ds.get("hostNetwork")
    assert 'io_backend = "epoll"' in find(plain, "ConfigMap", "heliosproxy")["data"][
        "heliosproxy.toml"]
    cp = find(plain, "Deployment", "helios-cp")
    assert cp["spec"]["replicas"] == 1
    svc = find(plain, "Service", "helios-cp")
    assert {p["port"] for p in svc["spec"]["ports"]} == {7433, 8433}
    pol = find(plain, "NetworkPolicy", "helios-cp")["spec"]["ingress"]
    control = next(rule for rule in pol if rule["ports"][0]["port"] == 7433)
    assert control["from"][0]["podSelector"]["matchLabels"] == {
        "heliosproxy/control-client": "true"}
    assert ds and find(plain, "PodDisruptionBudget", "helios-cp")

    fast = render(DEPLOY / "overlays" / "daemonset-fastpath")
    fds = find(fast, "DaemonSet", "heliosproxy")["spec"]["template"]["spec"]
    assert fds["hostNetwork"] is True and fds["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert fds["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "profiles/heliosproxy-io_uring.json"}
    caps = fds["containers"][0]["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["BPF", "NET_ADMIN", "PERFMON"]}
    toml = find(fast, "ConfigMap", "heliosproxy")["data"]["heliosproxy.toml"]
    for line in ('io_backend = "io_uring"', "kernel_splice = true", "[xdp]", "enabled = true"):
        assert line in toml
    # XDP needs the control plane on the node: in-process, not attached
    assert "control_address" not in tomllib.loads(toml)
    assert not [o for o in fast if o["metadata"]["name"] == "helios-cp"]

    side = render(DEPLOY / "overlays" / "sidecar")
    app = find(side, "Deployment", "example-app")["spec"]["template"]["spec"]
    names = [c["name"] for c in app["containers"]]
    assert names == ["app", "heliosproxy"]
    assert app["containers"][0]["env"][0] == {"name": "PGHOST", "value": "127.0.0.1"}
    assert "127.0.0.1:5433" in app["containers"][1]["args"]


def test_the_image_tag_in_the_manifests_is_the_version_the_build_makes():
    version = re.search(r'#define HELIOS_VERSION "([^"]+)"',
                        (ROOT / "common" / "cpwire.h").read_text()).group(1)
    seen = set()
    for overlay in OVERLAYS:
        for o in render(DEPLOY / "overlays" / overlay):
            spec = o.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                if c["image"].startswith("localhost/heliosproxy:"):
                    seen.add(c["image"])
    assert seen == {f"localhost/heliosproxy:{version}"}


def test_every_config_in_deploy_lists_the_same_nodes_and_users():
    # a data plane serves its own file until helios-cp answers, then
    # helios-cp's: the two must not disagree on where PostgreSQL is or who
    # may log in (the files say so; this keeps them to it)
    files = [DEPLOY / "base" / "heliosproxy.toml", DEPLOY / "control-plane" / "helios-cp.toml",
             DEPLOY / "overlays" / "daemonset-fastpath" / "heliosproxy.toml"]
    seen = {f.relative_to(DEPLOY).as_posix(): tomllib.loads(f.read_text()) for f in files}
    first = next(iter(seen.values()))
    for name, conf in seen.items():
        assert conf["nodes"] == first["nodes"], name
        assert conf["auth"]["users"] == first["auth"]["users"], name
        assert conf["routing"]["failover_timeout_secs"] == first["routing"][
            "failover_timeout_secs"], name


# ---------------------------------------------------------------- the validator catches

def test_the_validator_refuses_an_unknown_field_deep_in_a_pod_template(deploy_copy):
    def typo(docs):
        container(docs[0], "heliosproxy")["livenessProbe"]["httpGet"]["paht"] = "/livez"
    edit_yaml(deploy_copy / "overlays" / "daemonset-plain" / "daemonset.yaml", typo)
    r = validate(deploy_copy / "overlays" / "daemonset-plain", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("DaemonSet/heliosproxy: spec.template.spec.containers[0].livenessProbe.httpGet.paht:"
            " unknown field") in r.stdout, r.stdout


def test_the_validator_refuses_a_missing_required_field(deploy_copy):
    def no_selector(docs):
        del docs[0]["spec"]["selector"]
    edit_yaml(deploy_copy / "control-plane" / "deployment.yaml", no_selector)
    r = validate(deploy_copy / "control-plane", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Deployment/helios-cp: spec.selector: required field missing" in r.stdout, r.stdout


def test_the_validator_refuses_a_value_of_the_wrong_type(tmp_path):
    f = tmp_path / "pod.yaml"
    f.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i",
                                 "ports": [{"containerPort": "5433"}]}]}}))
    r = validate(f, check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Pod/p: spec.containers[0].ports[0].containerPort: must be an integer" in r.stdout


def test_the_validator_refuses_a_toml_variable_the_container_does_not_get(deploy_copy):
    def drop_env(docs):
        c = container(docs[0], "heliosproxy")
        c["env"] = [e for e in c["env"] if e["name"] != "HELIOS_APP_PASSWORD"]
    edit_yaml(deploy_copy / "overlays" / "daemonset-plain" / "daemonset.yaml", drop_env)
    r = validate(deploy_copy / "overlays" / "daemonset-plain", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("${HELIOS_APP_PASSWORD} is used but the container's env does not set it"
            in r.stdout), r.stdout


def test_the_validator_refuses_a_secret_key_that_does_not_exist(deploy_copy):
    def wrong_key(docs):
        c = container(docs[0], "helios-cp")
        c["env"][0]["valueFrom"]["secretKeyRef"]["key"] = "HELIOS_CONTROL_TOKN"
    edit_yaml(deploy_copy / "control-plane" / "deployment.yaml", wrong_key)
    r = validate(deploy_copy / "overlays" / "sidecar", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Secret heliosproxy-secrets has no key HELIOS_CONTROL_TOKN" in r.stdout, r.stdout


def test_the_validator_runs_check_config_and_reports_a_wrong_key(deploy_copy):
    toml = deploy_copy / "base" / "heliosproxy.toml"
    toml.write_text(toml.read_text().replace("max_pool_size = 20", "max_pool_sise = 20"))
    r = validate(deploy_copy / "overlays" / "daemonset-plain")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "heliosproxy --check-config" in ln]
    assert lines and all("max_pool_sise" in ln for ln in lines), r.stdout
    assert "DaemonSet/heliosproxy" in lines[0]


def test_the_validator_refuses_an_admin_address_kubelet_cannot_reach(deploy_copy):
    toml = deploy_copy / "base" / "heliosproxy.toml"
    toml.write_text(toml.read_text().replace('admin_address = "0.0.0.0:8432"',
                                             'admin_address = "127.0.0.1:8432"'))
    r = validate(deploy_copy / "overlays" / "daemonset-plain", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the admin address 127.0.0.1:8432 is loopback: kubelet probes the pod IP" in r.stdout


def test_the_validator_refuses_a_grace_period_shorter_than_the_drain(deploy_copy):
    toml = deploy_copy / "base" / "heliosproxy.toml"
    toml.write_text(toml.read_text().replace("shutdown_timeout_secs = 25",
                                             "shutdown_timeout_secs = 60"))
    r = validate(deploy_copy / "overlays" / "sidecar", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("Deployment/example-app: terminationGracePeriodSeconds: 30 s does not cover "
            "shutdown_timeout_secs = 60") in r.stdout, r.stdout


def test_the_validator_refuses_a_probe_on_another_port_than_the_admin_address(deploy_copy):
    toml = deploy_copy / "control-plane" / "helios-cp.toml"
    toml.write_text(toml.read_text().replace('"0.0.0.0:8433"', '"0.0.0.0:9091"'))
    r = validate(deploy_copy / "control-plane", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "probes port 8433, the config's admin address is 0.0.0.0:9091" in r.stdout, r.stdout


def test_the_validator_refuses_a_service_port_no_container_has(deploy_copy):
    def rename(docs):
        docs[0]["spec"]["ports"][0]["targetPort"] = "pg"
    edit_yaml(deploy_copy / "overlays" / "daemonset-plain" / "service.yaml", rename)
    r = validate(deploy_copy / "overlays" / "daemonset-plain", check_config=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DaemonSet/heliosproxy has no container port named pg" in r.stdout, r.stdout


# ---------------------------------------------------------------- the seccomp profile

def test_the_seccomp_profile_is_the_default_allowlist_plus_io_uring_and_bpf():
    prof = json.loads(PROFILE.read_text())
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {n for r in prof["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
               for n in r["names"]}
    assert {"io_uring_setup", "io_uring_enter", "io_uring_register", "bpf"} <= allowed
    # what must stay refused in a container
    assert not allowed & {"mount", "umount2", "unshare", "setns", "ptrace", "init_module",
                          "finit_module", "kexec_load", "keyctl", "add_key", "clone3",
                          "pivot_root", "swapon", "reboot", "perf_event_open"}
    clone = [r for r in prof["syscalls"] if r["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"


def test_every_syscall_the_profile_names_is_one_libseccomp_knows():
    # runc skips names it cannot resolve: a typo would silently refuse the call
    try:
        import seccomp
    except ImportError:
        pytest.fail("python3-seccomp is missing (make deps)")
    prof = json.loads(PROFILE.read_text())
    unknown = [n for r in prof["syscalls"] for n in r["names"]
               if seccomp.resolve_syscall(seccomp.Arch.NATIVE, n) == -1]
    assert unknown == []


def seccomp_prefix(*without):
    """Run as the fast-path DaemonSet does: uid 0 with only CAP_BPF,
    CAP_NET_ADMIN, CAP_PERFMON, no_new_privs, under the profile."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run with exactly the DaemonSet's capabilities")
    try:
        import seccomp  # noqa: F401
    except ImportError:
        pytest.fail("python3-seccomp is missing (make deps)")
    cmd = ["setpriv", "--bounding-set=-all,+bpf,+net_admin,+perfmon", "--inh-caps=-all", "--",
           sys.executable, str(Path(__file__).with_name("seccomp_exec.py")), str(PROFILE)]
    if without:
        cmd += ["--without", ",".join(without)]
    return cmd + ["--"]


def fastpath_config(config):
    return config(mode="session", pool={"kernel_splice": True}, tls={"server_mode": "disable"},
                  io_backend="io_uring")


def splice_total(p):
    import urllib.request
    port = p.defaults["admin_address"].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(
        r"(?m)^helios_splice_sessions_total(?:\{[^}]*\})? (\S+)$", text))


@pytest.fixture
def no_leak_check(monkeypatch):
    # LeakSanitizer stops the world with ptrace, which the profile refuses
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def test_under_the_fastpath_profile_and_caps_heliosproxy_serves_on_io_uring_and_splices(
        proxy, config, no_leak_check):
    p = proxy(fastpath_config(config), prefix=seccomp_prefix())
    with p.connect() as c:
        assert c.execute("SELECT 6 * 7").fetchone()[0] == 42
    log = p.log()
    assert re.search(r"listening on .*: 2 workers, io_uring,", log), log
    # kubectl exec runs helioctl under the pod's profile too
    r = subprocess.run(seccomp_prefix() + [str(helios_bin() / "helioctl"), "-c",
                                          str(p.config_path), "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    if "no BPF support" in log:
        pytest.skip("this build has no BPF: io_uring checked, the splice not")
    assert "cannot load the splice program" not in log, log
    assert wait_for(lambda: splice_total(p) >= 1), p.log_tail()


def test_without_the_profiles_io_uring_rules_the_same_proxy_falls_back_to_epoll(
        proxy, config, no_leak_check):
    # proves the profile is applied and is what lets io_uring through
    p = proxy(fastpath_config(config),
              prefix=seccomp_prefix("io_uring_setup", "io_uring_enter", "io_uring_register"))
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    log = p.log()
    assert "io_uring cannot be set up (Operation not permitted): using epoll" in log, log
    assert re.search(r"listening on .*: 2 workers, epoll,", log), log


def test_the_xdp_filter_loads_under_the_profile_with_the_three_caps_and_not_without_perfmon(
        tmp_path, short_dir, no_leak_check):
    # measured: the XDP program needs CAP_PERFMON (the verifier refuses it
    # with EACCES otherwise), which is why the fast-path DaemonSet adds it
    # (the splice program loads with CAP_BPF and CAP_NET_ADMIN alone). In a
    # network namespace of its own, on its lo, in generic mode.
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is missing")
    results = {}
    for caps in ("+bpf,+net_admin,+perfmon", "+bpf,+net_admin"):
        cfg = tmp_path / "xdp.toml"
        cfg.write_text(f"""listen_address = "127.0.0.1:5433"
admin_address = ""
io_backend = "io_uring"
workers = 1
state_dir = "{short_dir}/state{len(results)}"
[[nodes]]
host = "127.0.0.1"
port = 1
[[auth.users]]
name = "app"
password = "x"
[xdp]
enabled = true
interface = "lo"
mode = "generic"
ports = "5433"
""")
        prefix = seccomp_prefix()
        prefix[1] = f"--bounding-set=-all,{caps}"
        log = tmp_path / f"xdp{len(results)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                 *prefix, str(helios_bin() / "heliosproxy"), "-c", str(cfg)],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: "listening on" in log.read_text() or
                            proc.poll() is not None, timeout=15), log.read_text()
        finally:
            proc.terminate()
            proc.wait(15)
        text = log.read_text()
        if "no BPF support" in text:
            pytest.skip("this build has no BPF")
        assert "listening on" in text, text
        results[caps] = text
    assert "xdp: filter attached to lo in generic mode" in results["+bpf,+net_admin,+perfmon"]
    assert ("xdp: cannot load the XDP program: Permission denied"
            in results["+bpf,+net_admin"]), results["+bpf,+net_admin"]
