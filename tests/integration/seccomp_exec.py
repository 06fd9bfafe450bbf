#!/usr/bin/env python3
"""seccomp_exec.py PROFILE [--without NAME,...] -- CMD [ARG...]

Runs CMD under a seccomp profile in the OCI JSON format (what kubelet's
Localhost profiles, runc, crun and podman read), loaded with libseccomp the
way runc loads it: the default action, then one rule per syscall name and
argument condition; names this libseccomp does not know are skipped, as runc
skips them. --without drops syscalls from the profile's allow rules (for
tests that prove the profile is what lets a call through). Sets
no_new_privs, as allowPrivilegeEscalation: false does."""
import errno
import json
import os
import sys

import seccomp

OPS = {
    "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE, "SCMP_CMP_GT": seccomp.GT, "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}


def action(name, errno_ret, default_errno):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(default_errno if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    sys.exit(f"seccomp_exec: action {name} is not supported here")


def main():
    argv = sys.argv[1:]
    if "--" not in argv or not argv:
        sys.exit(__doc__)
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    profile_path, without = opts[0], set()
    if len(opts) == 3 and opts[1] == "--without":
        without = set(opts[2].split(","))
    with open(profile_path) as f:
        prof = json.load(f)
    default_errno = prof.get("defaultErrnoRet", errno.EPERM)
    flt = seccomp.SyscallFilter(defaction=action(prof["defaultAction"], None, default_errno))
    for rule in prof.get("syscalls", []):
        act = action(rule["action"], rule.get("errnoRet"), default_errno)
        args = [seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in rule.get("args", [])]
        for name in rule["names"]:
            if act == seccomp.ALLOW and name in without:
                continue
            try:
                if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1:
                    continue  # unknown to this libseccomp: runc skips it too
                flt.add_rule(act, name, *args)
            except (ValueError, RuntimeError, OSError):
                continue  # not on this architecture (runc skips these too)
    flt.load()
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
