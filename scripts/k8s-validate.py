#!/usr/bin/python3
"""Schema and consistency check of the Kubernetes manifests, with no cluster.

    scripts/k8s-validate.py [--heliosproxy BIN] [--no-check-config] [PATH ...]

PATH (default: deploy/ of this repository) is a folder or a YAML file. Every
folder holding a kustomization.yaml is rendered with `kubectl kustomize`;
every other *.yaml / *.yml file not inside such a folder is read as it is.
A kustomization that another one includes is checked as part of that one
(alone it may lack the Secret the other adds), unless it is named itself.
Each object is then checked:

- against the object models of the Kubernetes Python client (Debian's
  python3-kubernetes): a field the model does not have is an error, anywhere
  in the object, as are a required field that is missing and a value of the
  wrong type. Kinds the client has no model for (kustomize's own, custom
  resources) are skipped and named;
- for consistency inside one rendering: volumes, ConfigMaps and Secrets a
  container uses exist (a Secret no rendering includes may be made at install
  time, like helios-control-tls: only a warning), probe and Service ports
  name container ports, Service selectors select a pod template;
- for HeliosProxy: every "${VAR}" in a TOML file that a container mounts is
  in that container's environment, the probes ask the port the config's admin
  address listens on (not on loopback), terminationGracePeriodSeconds
  covers shutdown_timeout_secs, and each such TOML file passes
  `heliosproxy --check-config` with the container's environment (values from
  the rendered Secrets) and its mounts laid out in a temporary folder.

One line per problem: `RENDER: KIND/NAME: PATH: message`. Exit 0 when there
is none, 1 when there is, 2 when the check itself cannot run.
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import kubernetes.client as kclient
except ImportError:
    sys.stderr.write("k8s-validate: the Kubernetes Python client is missing: "
                     "apt-get install python3-kubernetes\n")
    sys.exit(2)


class Report:
    def __init__(self):
        self.errors = []
        self.notes = []

    def error(self, where, path, msg):
        self.errors.append(f"{where}: {path}: {msg}" if path else f"{where}: {msg}")

    def note(self, msg):
        self.notes.append(msg)


# ------------------------------------------------------------ the models

_required_cache = {}


def model_for(api_version, kind):
    """The client's model class for apiVersion/kind, or None."""
    version = api_version.rsplit("/", 1)[-1]
    name = version[:1].upper() + version[1:] + kind
    cls = getattr(kclient, name, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return None
    return cls


def _bare(cls):
    obj = cls.__new__(cls)
    obj.local_vars_configuration = kclient.Configuration()
    obj.local_vars_configuration.client_side_validation = True
    return obj


def required_attrs(cls):
    """Attributes whose setter refuses None: the fields the API requires."""
    if cls not in _required_cache:
        req = []
        obj = _bare(cls)
        for attr in cls.openapi_types:
            try:
                setattr(obj, attr, None)
            except ValueError:
                req.append(attr)
            except Exception:
                pass
        _required_cache[cls] = req
    return _required_cache[cls]


def type_name(v):
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def check_value(rep, where, path, value, tname):
    """value (from YAML) against the client's type string tname."""
    if tname == "object":
        return
    if tname.startswith("list["):
        if not isinstance(value, list):
            rep.error(where, path, f"must be a list, not {type_name(value)}")
            return
        for i, item in enumerate(value):
            check_value(rep, where, f"{path}[{i}]", item, tname[5:-1])
        return
    if tname.startswith("dict("):
        if not isinstance(value, dict):
            rep.error(where, path, f"must be a mapping, not {type_name(value)}")
            return
        inner = tname[5:-1].split(",", 1)[1].strip()
        for k, v in value.items():
            if not isinstance(k, str):
                rep.error(where, f"{path}.{k}", "keys must be strings")
            check_value(rep, where, f"{path}.{k}", v, inner)
        return
    simple = {
        "str": (str,), "bool": (bool,), "int": (int,), "float": (int, float),
        "datetime": (str,), "date": (str,),
    }
    if tname in simple:
        ok = isinstance(value, simple[tname]) and not (
            tname in ("int", "float") and isinstance(value, bool))
        if not ok:
            rep.error(where, path, f"must be {type_name(simple[tname][0]())}, not "
                      f"{type_name(value)} ({value!r})")
        return
    cls = getattr(kclient, tname, None)
    if cls is None:
        rep.error(where, path, f"the client knows no type {tname}")
        return
    check_model(rep, where, path, value, cls)


def check_model(rep, where, path, data, cls):
    if not isinstance(data, dict):
        rep.error(where, path, f"must be a mapping ({cls.__name__}), not {type_name(data)}")
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        attr = by_json.get(key)
        if attr is None:
            rep.error(where, sub, f"unknown field (not in {cls.__name__})")
            continue
        if value is None:
            continue  # YAML's "key:" with nothing: the same as leaving it out
        tname = cls.openapi_types[attr]
        check_value(rep, where, sub, value, tname)
        if tname in ("str", "int", "bool"):
            # setters that list allowed values (enums) say so here
            try:
                setattr(_bare(cls), attr, value)
            except ValueError as e:
                rep.error(where, sub, str(e))
            except Exception:
                pass
    for attr in required_attrs(cls):
        if data.get(cls.attribute_map[attr]) is None:
            sub = f"{path}.{cls.attribute_map[attr]}" if path else cls.attribute_map[attr]
            rep.error(where, sub, f"required field missing ({cls.__name__})")


# ------------------------------------------------------------ sources

# Folders of a walked tree that hold YAML but no Kubernetes objects:
# deploy/monitoring/ has Prometheus rule files and promtool tests
# (tests/integration/test_monitoring.py checks those).
NOT_MANIFESTS = ("monitoring",)


def prune_not_manifests(top, d, subdirs):
    """Sorts subdirs for os.walk and drops the NOT_MANIFESTS folders of top."""
    subdirs.sort()
    if os.path.normpath(d) == os.path.normpath(top):
        subdirs[:] = [s for s in subdirs if s not in NOT_MANIFESTS]


def find_sources(paths, rep):
    """[(label, [objects])]: kustomize folders rendered, other YAML read."""
    out = []
    for p in paths:
        if os.path.isfile(p):
            out.append((p, load_yaml_file(p, rep)))
            continue
        if not os.path.isdir(p):
            rep.error(p, "", "no such file or folder")
            continue
        kust_dirs = []
        for d, subdirs, files in os.walk(p):
            prune_not_manifests(p, d, subdirs)
            if any(f in files for f in ("kustomization.yaml", "kustomization.yml",
                                        "Kustomization")):
                kust_dirs.append(d)
        for d, subdirs, files in os.walk(p):
            prune_not_manifests(p, d, subdirs)
            if any(d == k or d.startswith(k + os.sep) for k in kust_dirs):
                continue
            for f in sorted(files):
                if f.endswith((".yaml", ".yml")):
                    fp = os.path.join(d, f)
                    out.append((fp, load_yaml_file(fp, rep)))
        # a kustomization another one includes is checked as part of that
        # one (alone it may lack what the including one adds), unless named
        referenced = set()
        for d in kust_dirs:
            for entry in kustomization_entries(d):
                sub = os.path.normpath(os.path.join(d, entry))
                if os.path.isdir(sub):
                    referenced.add(sub)
        for d in kust_dirs:
            if os.path.normpath(d) in referenced and os.path.normpath(d) != os.path.normpath(p):
                continue
            out.append((d + "/", render(d, rep)))
    return out


def kustomization_entries(d):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        f = os.path.join(d, name)
        if os.path.exists(f):
            try:
                with open(f) as fh:
                    k = yaml.safe_load(fh) or {}
            except (OSError, yaml.YAMLError):
                return []
            return [e for key in ("resources", "bases", "components")
                    for e in k.get(key) or [] if isinstance(e, str)]
    return []


def load_yaml_file(path, rep):
    try:
        with open(path) as f:
            return [o for o in yaml.safe_load_all(f) if o is not None]
    except (OSError, yaml.YAMLError) as e:
        rep.error(path, "", f"cannot read: {e}")
        return []


def render(d, rep):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        sys.stderr.write("k8s-validate: kubectl is missing (it renders the kustomizations): "
                         "apt-get install kubernetes-client\n")
        sys.exit(2)
    r = subprocess.run([kubectl, "kustomize", d], capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip().replace("\n", " / ")
        rep.error(d + "/", "", f"kubectl kustomize failed: {msg}")
        return []
    try:
        return [o for o in yaml.safe_load_all(r.stdout) if o is not None]
    except yaml.YAMLError as e:
        rep.error(d + "/", "", f"kubectl kustomize printed no valid YAML: {e}")
        return []


def obj_name(o):
    meta = o.get("metadata") if isinstance(o.get("metadata"), dict) else {}
    return f"{o.get('kind', '?')}/{meta.get('name', '?')}"


# ------------------------------------------------------------ consistency

WORKLOADS = {"Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}


def pod_spec(o):
    """(template labels, pod spec) of a workload, else (None, None)."""
    kind = o.get("kind")
    spec = o.get("spec") if isinstance(o.get("spec"), dict) else {}
    if kind == "Pod":
        return (o.get("metadata") or {}).get("labels") or {}, spec
    if kind in WORKLOADS:
        tpl = spec.get("template") or {}
        return (tpl.get("metadata") or {}).get("labels") or {}, tpl.get("spec") or {}
    return None, None


def secret_values(o):
    vals = {}
    for k, v in (o.get("data") or {}).items():
        try:
            vals[k] = base64.b64decode(str(v), validate=True)
        except ValueError:
            vals[k] = None
    for k, v in (o.get("stringData") or {}).items():
        vals[k] = str(v).encode()
    return vals


ENV_REF = re.compile(r"\$(\$?)\{([^}]*)\}")


def toml_strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from toml_strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from toml_strings(x)


def env_refs(text):
    """Names of ${NAME} references in the string values of TOML text (not
    in comments); $${ is a literal. Unparsable text: the whole text."""
    strings = [text]
    if tomllib is not None:
        try:
            strings = list(toml_strings(tomllib.loads(text)))
        except tomllib.TOMLDecodeError:
            pass
    return {m.group(2) for t in strings for m in ENV_REF.finditer(t) if not m.group(1)}


def admin_port_of(tomltext, key, args):
    """(host, port) of the admin address the process will listen on."""
    addr = None
    for flag in ("--admin-address", "--admin"):
        if flag in args and args.index(flag) + 1 < len(args):
            addr = args[args.index(flag) + 1]
    if addr is None and tomllib is not None:
        try:
            addr = tomllib.loads(ENV_REF.sub("x", tomltext)).get(key)
        except tomllib.TOMLDecodeError:
            return None
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else None


class Stand:
    """Stand-ins for files of Secrets the rendering does not include."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cert = self.key = None

    def pem(self, want_key):
        if self.cert is None:
            self.cert = os.path.join(self.tmp, "standin.crt")
            self.key = os.path.join(self.tmp, "standin.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                            "-subj", "/CN=k8s-validate stand-in", "-keyout", self.key,
                            "-out", self.cert], check=True, capture_output=True)
        with open(self.key if want_key else self.cert, "rb") as f:
            return f.read()


def check_consistency(rep, label, objs, all_secrets, args, tmp):
    cms = {(o.get("metadata") or {}).get("name"): o for o in objs if o.get("kind") == "ConfigMap"}
    secrets = {(o.get("metadata") or {}).get("name"): o for o in objs if o.get("kind") == "Secret"}
    pods = []
    for o in objs:
        labels, spec = pod_spec(o)
        if spec is None:
            continue
        pods.append((o, labels, spec))
        where = f"{label}: {obj_name(o)}"
        volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
        for v in volumes.values():
            if "configMap" in v:
                name = v["configMap"].get("name")
                if name not in cms and not v["configMap"].get("optional"):
                    rep.error(where, f"volumes.{v['name']}", f"ConfigMap {name} is not in the "
                              "rendering")
            if "secret" in v:
                name = v["secret"].get("secretName")
                if name not in secrets and not v["secret"].get("optional"):
                    if name in all_secrets:
                        rep.error(where, f"volumes.{v['name']}", f"Secret {name} is in another "
                                  "rendering, not this one")
                    else:
                        rep.note(f"Secret {name} is in no rendering: it must be made at "
                                 "install time")
        containers = [("containers", c) for c in spec.get("containers") or []] + \
                     [("initContainers", c) for c in spec.get("initContainers") or []]
        for field, c in containers:
            if not isinstance(c, dict):
                continue
            cpath = f"{field}[{c.get('name')}]"
            check_container(rep, where, cpath, c, volumes, cms, secrets, args, tmp,
                            spec.get("terminationGracePeriodSeconds", 30))
    for o in objs:
        if o.get("kind") != "Service":
            continue
        where = f"{label}: {obj_name(o)}"
        spec = o.get("spec") or {}
        sel = spec.get("selector") or {}
        if not sel:
            continue
        chosen = [(p, l, s) for p, l, s in pods if all(l.get(k) == v for k, v in sel.items())]
        if not chosen:
            rep.error(where, "spec.selector", f"selects no pod template of this rendering ({sel})")
            continue
        for i, port in enumerate(spec.get("ports") or []):
            tp = port.get("targetPort", port.get("port"))
            for p, _, s in chosen:
                names = {cp.get("name"): cp.get("containerPort")
                         for c in s.get("containers") or [] for cp in c.get("ports") or []}
                if isinstance(tp, str) and tp not in names:
                    rep.error(where, f"spec.ports[{i}].targetPort",
                              f"{obj_name(p)} has no container port named {tp}")


def check_container(rep, where, cpath, c, volumes, cms, secrets, args, tmp, grace):
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []
             if isinstance(p, dict)}
    # probes ask ports the container declares
    probe_ports = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        hg = (c.get(probe) or {}).get("httpGet")
        if not hg:
            continue
        port = hg.get("port")
        if isinstance(port, str):
            if port not in ports:
                rep.error(where, f"{cpath}.{probe}.httpGet.port", f"no container port named {port}")
                continue
            port = ports[port]
        probe_ports.append((probe, port))
    # the environment: name -> value (bytes) or None when unknown
    env = {}
    for i, e in enumerate(c.get("env") or []):
        if not isinstance(e, dict):
            continue
        name = e.get("name")
        if "value" in e:
            env[name] = str(e["value"]).encode()
            continue
        ref = (e.get("valueFrom") or {})
        if "secretKeyRef" in ref:
            sk = ref["secretKeyRef"]
            s = secrets.get(sk.get("name"))
            if s is None:
                if not sk.get("optional"):
                    rep.error(where, f"{cpath}.env[{name}]",
                              f"Secret {sk.get('name')} is not in the rendering")
                env[name] = None
                continue
            vals = secret_values(s)
            if sk.get("key") not in vals:
                rep.error(where, f"{cpath}.env[{name}]",
                          f"Secret {sk.get('name')} has no key {sk.get('key')}")
            env[name] = vals.get(sk.get("key"))
        elif "configMapKeyRef" in ref:
            ck = ref["configMapKeyRef"]
            cm = cms.get(ck.get("name"))
            if cm is None or ck.get("key") not in (cm.get("data") or {}):
                rep.error(where, f"{cpath}.env[{name}]",
                          f"ConfigMap {ck.get('name')} key {ck.get('key')} is not in the rendering")
                env[name] = None
            else:
                env[name] = str(cm["data"][ck["key"]]).encode()
        else:
            env[name] = b"x"  # fieldRef, resourceFieldRef: known at run time
    for ef in c.get("envFrom") or []:
        src = ef.get("secretRef") or ef.get("configMapRef") or {}
        pool = secrets if "secretRef" in ef else cms
        obj = pool.get(src.get("name"))
        if obj is None:
            if not src.get("optional"):
                rep.error(where, f"{cpath}.envFrom", f"{src.get('name')} is not in the rendering")
            continue
        vals = secret_values(obj) if "secretRef" in ef else {
            k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        for k, v in vals.items():
            env.setdefault(ef.get("prefix", "") + k, v)

    mounts = []
    for i, m in enumerate(c.get("volumeMounts") or []):
        if not isinstance(m, dict):
            continue
        if m.get("name") not in volumes:
            rep.error(where, f"{cpath}.volumeMounts[{i}]", f"no volume named {m.get('name')}")
            continue
        mounts.append((m, volumes[m["name"]]))

    cmdline = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    is_cp = any(os.path.basename(a) == "helios-cp" for a in c.get("command") or [])
    for m, v in mounts:
        if "configMap" not in v or m.get("subPath"):
            continue
        cm = cms.get(v["configMap"].get("name"))
        if cm is None:
            continue
        for key, text in (cm.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            fpath = f"{cpath} {m['mountPath']}/{key}"
            # every ${VAR} comes from the container's environment
            for var in sorted(env_refs(text)):
                if var not in env:
                    rep.error(where, fpath, f"${{{var}}} is used but the container's env "
                              "does not set it")
            # probes go to the admin address, which must not be loopback
            if key == "heliosproxy.toml" or len(cm.get("data")) == 1:
                adm = admin_port_of(text, "control_admin_address" if is_cp else "admin_address",
                                    cmdline)
                for probe, port in probe_ports:
                    if adm is None:
                        rep.error(where, f"{cpath}.{probe}", "probes an admin port but the config "
                                  "sets no admin address")
                    elif adm[1] != port:
                        rep.error(where, f"{cpath}.{probe}", f"probes port {port}, the config's "
                                  f"admin address is {adm[0]}:{adm[1]}")
                    elif adm[0] in ("127.0.0.1", "::1", "localhost"):
                        rep.error(where, f"{cpath}.{probe}", f"the admin address {adm[0]}:"
                                  f"{adm[1]} is loopback: kubelet probes the pod IP")
            # SIGTERM drains for shutdown_timeout_secs: kubelet must not
            # SIGKILL before (helios-cp stops at once)
            if not is_cp and tomllib is not None and isinstance(grace, int):
                try:
                    shut = tomllib.loads(ENV_REF.sub("x", text)).get("shutdown_timeout_secs", 30)
                except tomllib.TOMLDecodeError:
                    shut = None
                if isinstance(shut, int) and grace <= shut:
                    rep.error(where, "terminationGracePeriodSeconds", f"{grace} s does not "
                              f"cover shutdown_timeout_secs = {shut} of {m['mountPath']}/{key}: "
                              "kubelet would kill the proxy while it drains")
            if args.check_config and all(env.get(v) is not None for v in env_refs(text)):
                check_config(rep, where, fpath, key, text, env, mounts, m, cms, secrets,
                             args, tmp)


def check_config(rep, where, fpath, key, text, env, mounts, cfg_mount, cms, secrets, args, tmp):
    """heliosproxy --check-config on the file, its container's mounts laid out in tmp."""
    root = tempfile.mkdtemp(dir=tmp)
    stand = Stand(tmp)
    remap = {}
    for n, (m, v) in enumerate(sorted(mounts, key=lambda mv: -len(mv[0]["mountPath"]))):
        d = os.path.join(root, f"m{n}")
        os.makedirs(d)
        remap[m["mountPath"].rstrip("/")] = d
    layout = dict(remap)
    for m, v in mounts:
        d = layout[m["mountPath"].rstrip("/")]
        files = {}
        if "configMap" in v:
            cm = cms.get(v["configMap"].get("name")) or {}
            files = {k: str(t).encode() for k, t in (cm.get("data") or {}).items()}
        elif "secret" in v:
            s = secrets.get(v["secret"].get("secretName"))
            if s is not None:
                files = secret_values(s)
            else:
                # made at install time: stand-ins for the files the config names
                prefix = m["mountPath"].rstrip("/") + "/"
                for path in re.findall(r'"(' + re.escape(prefix) + r'[^"]+)"', text):
                    rel = path[len(prefix):]
                    files[rel] = stand.pem(rel.endswith(".key"))
        items = (v.get("configMap") or v.get("secret") or {}).get("items")
        if items:
            files = {it["path"]: files.get(it["key"]) for it in items if it.get("key") in files}
        for rel, data in files.items():
            if data is None:
                continue
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o600)
    os.chmod(root, 0o700)
    laid = text
    for mp, d in sorted(remap.items(), key=lambda kv: -len(kv[0])):
        laid = laid.replace(f'"{mp}/', f'"{d}/').replace(f'"{mp}"', f'"{d}"')
    cfg_dir = remap[cfg_mount["mountPath"].rstrip("/")]
    cfg_path = os.path.join(cfg_dir, key)
    with open(cfg_path, "w") as f:
        f.write(laid)
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k, v in env.items():
        if v is not None and "\0" not in v.decode(errors="replace"):
            run_env[k] = v.decode(errors="replace")
    r = subprocess.run([args.heliosproxy, "--check-config", cfg_path], capture_output=True,
                       text=True, env=run_env, timeout=30)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).replace("\n", " / ")
        for mp, d in remap.items():  # name the files as the pod sees them
            msg = msg.replace(d, mp)
        rep.error(where, fpath, f"heliosproxy --check-config: {msg}")


# ------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="folders or YAML files (default: deploy/)")
    ap.add_argument("--heliosproxy", help="heliosproxy binary for --check-config (default: "
                    "$HELIOS_BIN/heliosproxy, else build/release/bin/heliosproxy)")
    ap.add_argument("--no-check-config", dest="check_config", action="store_false",
                    help="skip heliosproxy --check-config of the TOML files")
    ap.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    args = ap.parse_args()
    paths = args.paths or [os.path.join(ROOT, "deploy")]
    if args.check_config:
        if not args.heliosproxy:
            args.heliosproxy = os.path.join(os.environ.get("HELIOS_BIN") or
                                            os.path.join(ROOT, "build", "release", "bin"),
                                            "heliosproxy")
        if not os.access(args.heliosproxy, os.X_OK):
            sys.stderr.write(f"k8s-validate: {args.heliosproxy} is not there (make, or "
                             "--heliosproxy BIN, or --no-check-config)\n")
            return 2

    rep = Report()
    sources = find_sources(paths, rep)
    all_secrets = {(o.get("metadata") or {}).get("name")
                   for _, objs in sources for o in objs if isinstance(o, dict)
                   and o.get("kind") == "Secret"}
    skipped = set()
    n_objs = 0
    with tempfile.TemporaryDirectory(prefix="k8s-validate.") as tmp:
        for label, objs in sources:
            good = []
            for i, o in enumerate(objs):
                if not isinstance(o, dict):
                    rep.error(label, f"document {i}", "is not a mapping")
                    continue
                av, kind = o.get("apiVersion"), o.get("kind")
                where = f"{label}: {obj_name(o)}"
                if not isinstance(av, str) or not isinstance(kind, str):
                    rep.error(where, "", "apiVersion and kind must be set")
                    continue
                cls = model_for(av, kind)
                if cls is None:
                    skipped.add(f"{av} {kind}")
                    continue
                n_objs += 1
                check_model(rep, where, "", o, cls)
                if not (o.get("metadata") or {}).get("name"):
                    rep.error(where, "metadata.name", "required field missing")
                good.append(o)
            check_consistency(rep, label, good, all_secrets, args, tmp)

    for e in rep.errors:
        print(e)
    if not args.quiet:
        for n in sorted(set(rep.notes)):
            print(f"note: {n}", file=sys.stderr)
        if skipped:
            print("note: no model, not checked: " + ", ".join(sorted(skipped)), file=sys.stderr)
        print(f"k8s-validate: {len(sources)} sources, {n_objs} objects, "
              f"{len(rep.errors)} problems", file=sys.stderr)
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
