"""helioctl polish (issue 17): strict numbers, the cache flush limit named
right, a failure at the default address that says how to give another,
HELIOCTL_ADDRESS, drain --wait, and the bash completion it prints. Real
helioctl against a real proxy; the completion runs in a real bash."""

import os
import re
import subprocess
import time

import pytest

from conftest import helioctl, helios_bin, run, wait_for


def ctl(*args, env=None, timeout=30):
    return run([str(helios_bin() / "helioctl"), *args], check=False, timeout=timeout, env=env)


def test_slowlog_n_with_trailing_junk_or_sign_is_refused(proxy, config):
    p = proxy(config(analytics={"enabled": True}))
    for bad in ("5x", "-5", "+5", " 5", "0", "10001", "", "99999999999999999999"):
        r = helioctl(p, "slowlog", "-n", bad, check=2)
        assert f"-n wants a number from 1 to 10000, not '{bad}'" in r.stderr, r
    helioctl(p, "slowlog", "-n", "5", check=0)
    r = helioctl(p, "--timeout", "5s", "status", check=2)
    assert "--timeout wants milliseconds" in r.stderr


def test_cache_flush_with_too_many_names_names_the_flush_limit(proxy, config):
    p = proxy(config())
    r = helioctl(p, "cache", "flush", "a", "b", "c", check=2)
    assert "cache flush takes at most one TABLE, not 3" in r.stderr, r.stderr
    r = helioctl(p, "cache", "stats", "x", check=2)
    assert "cache stats takes no arguments" in r.stderr, r.stderr


def test_unreachable_default_address_suggests_config_address_or_env(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    r = ctl("--timeout", "2000", "status", env=env)
    assert r.returncode == 3, r
    assert "that is the default address" in r.stderr, r.stderr
    for hint in ("-c CONFIG", "-a URL", "HELIOCTL_ADDRESS"):
        assert hint in r.stderr, r.stderr
    env["HELIOCTL_ADDRESS"] = f"ipc://{tmp_path}/nothing.ctl"
    r = ctl("--timeout", "2000", "status", env=env)
    assert r.returncode == 3 and "came from HELIOCTL_ADDRESS" in r.stderr, r.stderr
    # an explicit -a is the person's own choice: no hint
    r = ctl("--timeout", "2000", "-a", f"ipc://{tmp_path}/x.ctl", "status", env=env)
    assert r.returncode == 3 and "HELIOCTL_ADDRESS" not in r.stderr, r.stderr


def test_helioctl_address_env_reaches_the_proxy(proxy, config, tmp_path):
    p = proxy(config())
    m = p.wait_log(r"helioctl reaches it at (\S+)")
    assert m, p.log_tail()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HELIOCTL_ADDRESS": m.group(1)}
    r = ctl("nodes", env=env)
    assert r.returncode == 0 and "primary" in r.stdout, r


def test_drain_wait_returns_once_the_node_has_no_server_in_use(proxy, config):
    p = proxy(config())
    holder = p.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1")  # a server on the primary, in use
    cmd = [str(helios_bin() / "helioctl"), "-c", str(p.config_path), "drain", "primary",
           "--wait", "--wait-timeout", "30"]
    w = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert w.poll() is None, w.communicate()  # still waiting: the server is in use
        holder.execute("COMMIT")
        holder.close()
        t0 = time.monotonic()
        out, err = w.communicate(timeout=15)
        assert w.returncode == 0, (out, err)
        assert time.monotonic() - t0 < 5
        assert "node primary drained" in out, out
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    nodes = helioctl(p, "nodes", check=0).stdout
    assert re.search(r"(?m)^primary .* yes", nodes), nodes  # DRAINING stays until undrain
    helioctl(p, "undrain", "primary", check=0)


def test_drain_wait_gives_up_after_its_timeout_with_a_reason(proxy, config):
    p = proxy(config())
    with p.connect() as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")
        t0 = time.monotonic()
        r = helioctl(p, "drain", "primary", "--wait", "--wait-timeout", "2", check=1)
        assert 1.8 < time.monotonic() - t0 < 10
        assert "node primary still has 1 server connection(s) in use after 2 s" in r.stderr, r
        holder.execute("COMMIT")
    r = helioctl(p, "drain", "primary", "--wait-timeout", "0", check=2)
    assert "--wait-timeout wants seconds" in r.stderr


COMPLETE = """
source "$1"
complete -p helioctl
c() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _helioctl; echo "${COMPREPLY[*]}"; }
c helioctl co
c helioctl dr
c helioctl config ''
c helioctl -c x.toml cache ''
c helioctl drain primary --w
c helioctl top --by p
c helioctl --js
c helioctl pools ''
"""


def test_bash_completion_completes_verbs_subcommands_and_options(tmp_path):
    script = tmp_path / "helioctl.bash"
    r = ctl("--completion", "bash")
    assert r.returncode == 0, r
    script.write_text(r.stdout)
    out = run(["bash", "--norc", "--noprofile", "-c", COMPLETE, "bash", str(script)]).stdout
    lines = out.splitlines()
    assert lines[0] == "complete -F _helioctl helioctl", out
    assert lines[1:] == ["config", "drain", "get show diff set reset", "stats flush",
                         "--wait --wait-timeout", "p99", "--json", ""], out
    r = ctl("--completion", "zsh")
    assert r.returncode == 2 and "--completion wants bash" in r.stderr
