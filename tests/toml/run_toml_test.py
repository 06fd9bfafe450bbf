#!/usr/bin/python3
"""Runs the toml-test conformance cases (TOML 1.0) against a decoder.

The decoder reads TOML on stdin and prints toml-test's tagged JSON (exit 0),
or rejects the input (exit 1). Valid cases must decode to the expected JSON,
compared by value; invalid cases must be rejected without crashing. The case
data lives outside the repository and is never copied into it.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

TIMEOUT = 10  # seconds per case
LIST_FILE = "files-toml-1.0.0"
SCALAR_TYPES = {"string", "integer", "float", "bool", "datetime",
                "datetime-local", "date-local", "time-local"}
# Sanitizer builds exit 1 on a report by default, which would pass for an
# invalid case: give them exit codes of their own, and look at stderr too.
SANITIZER_EXIT = 86
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: UndefinedBehaviorSanitizer")

DT_RE = re.compile(
    r"^(?:(\d{4})-(\d{2})-(\d{2}))?(?:[Tt ]?(\d{2}):(\d{2}):(\d{2})(\.\d+)?)?"
    r"([Zz]|[+-]\d{2}:\d{2})?$")


def default_data_dir():
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "toml-test" / "tests"


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def dt_key(kind, text):
    """A comparable form of a date/time: offset date-times become an
    instant, so Z and +00:00 (or any equal instant) compare equal, and
    fractional seconds compare by value, not by number of digits."""
    m = DT_RE.match(text)
    if not m:
        return ("unparsed", text)
    y, mo, d, h, mi, s, frac, off = m.groups()
    frac = Decimal(frac) if frac else Decimal(0)
    if kind == "date-local":
        return (int(y), int(mo), int(d))
    if kind == "time-local":
        return (int(h), int(mi), int(s), frac)
    if kind == "datetime-local":
        return (int(y), int(mo), int(d), int(h), int(mi), int(s), frac)
    secs = (days_from_civil(int(y), int(mo), int(d)) * 86400 + int(h) * 3600 +
            int(mi) * 60 + int(s))
    if off and off not in ("Z", "z"):
        sign = 1 if off[0] == "+" else -1
        secs -= sign * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    return (secs, frac)


def is_tagged(v):
    return (isinstance(v, dict) and set(v) == {"type", "value"} and
            isinstance(v["type"], str) and isinstance(v["value"], str))


def parse_int(text):
    t = text.replace("_", "")
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if t.startswith(prefix):
            return sign * int(t[2:], base)
    return sign * int(t, 10)


def scalar_equal(exp, got):
    kind = exp["type"]
    if got["type"] != kind:
        return False
    e, g = exp["value"], got["value"]
    try:
        if kind == "integer":
            return parse_int(e) == parse_int(g)
        if kind == "float":
            fe, fg = float(e.replace("_", "")), float(g.replace("_", ""))
            if math.isnan(fe) or math.isnan(fg):
                return math.isnan(fe) and math.isnan(fg)
            return fe == fg
        if kind in ("datetime", "datetime-local", "date-local", "time-local"):
            return dt_key(kind, e) == dt_key(kind, g)
    except ValueError:
        return False
    return e == g  # string, bool: exact


def equal(exp, got, path, diffs):
    if is_tagged(exp) and exp["type"] in SCALAR_TYPES:
        if not is_tagged(got) or not scalar_equal(exp, got):
            diffs.append(f"{path or '<root>'}: expected {json.dumps(exp)}, "
                         f"got {json.dumps(got)}")
        return
    if isinstance(exp, dict):
        if not isinstance(got, dict) or is_tagged(got):
            diffs.append(f"{path or '<root>'}: expected a table, got "
                         f"{json.dumps(got)[:80]}")
            return
        for k in exp:
            if k not in got:
                diffs.append(f"{path}.{k}: missing")
            else:
                equal(exp[k], got[k], f"{path}.{k}", diffs)
        for k in got:
            if k not in exp:
                diffs.append(f"{path}.{k}: unexpected key")
        return
    if isinstance(exp, list):
        if not isinstance(got, list) or len(got) != len(exp):
            diffs.append(f"{path or '<root>'}: expected an array of {len(exp)}, "
                         f"got {json.dumps(got)[:80]}")
            return
        for i, (e, g) in enumerate(zip(exp, got)):
            equal(e, g, f"{path}[{i}]", diffs)
        return
    diffs.append(f"{path or '<root>'}: unexpected expected-value {exp!r}")


def sanitizer_env():
    env = dict(os.environ)
    extra = {"ASAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:detect_leaks=1",
             "UBSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:print_stacktrace=1",
             "LSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}"}
    for k, v in extra.items():
        env[k] = f"{env[k]}:{v}" if env.get(k) else v
    return env


def run(decoder, toml_path, env):
    """Returns (exit code or None on timeout, stdout, stderr)."""
    with open(toml_path, "rb") as f:
        data = f.read()
    try:
        p = subprocess.run([decoder], input=data, capture_output=True,
                           timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, b"", b"timeout"
    return p.returncode, p.stdout, p.stderr


def crash_reason(rc, err):
    if rc is None:
        return f"timed out after {TIMEOUT}s"
    text = err.decode("utf-8", "replace")
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return "sanitizer report: " + line.strip()[:200]
    if rc < 0:
        return f"killed by signal {-rc}"
    if rc >= 2:
        return f"crashed (exit {rc})"
    return None


def check_valid(decoder, data_dir, rel, env):
    rc, out, err = run(decoder, data_dir / rel, env)
    why = crash_reason(rc, err)
    if why:
        return why
    if rc != 0:
        return f"rejected: {err.decode('utf-8', 'replace').strip()[:200]}"
    expected_path = (data_dir / rel).with_suffix(".json")
    try:
        expected = json.loads(expected_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"cannot read expected {expected_path.name}: {e}"
    try:
        got = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"decoder printed invalid JSON: {e}"
    diffs = []
    equal(expected, got, "", diffs)
    if diffs:
        return "; ".join(diffs[:3]) + (" ..." if len(diffs) > 3 else "")
    return None


def check_invalid(decoder, data_dir, rel, env):
    rc, _, err = run(decoder, data_dir / rel, env)
    why = crash_reason(rc, err)
    if why:
        return why
    if rc == 0:
        return "accepted invalid TOML"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", required=True, help="decoder program")
    ap.add_argument("--data", help="toml-test 'tests' folder "
                    "(default: <repo>/../shared/toml-test/tests)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="name every case as it runs")
    args = ap.parse_args()

    data_dir = Path(args.data) if args.data else default_data_dir()
    list_path = data_dir / LIST_FILE
    if not list_path.is_file():
        print(f"toml-test data not found at {data_dir}: skipped the conformance cases")
        return 0
    decoder = os.path.abspath(args.decoder)
    if not os.access(decoder, os.X_OK):
        print(f"decoder {decoder} is not an executable file", file=sys.stderr)
        return 2

    cases = [l.strip() for l in list_path.read_text(encoding="utf-8").splitlines()]
    cases = [c for c in cases if c.endswith(".toml")]
    env = sanitizer_env()
    stats = {"valid": [0, 0], "invalid": [0, 0]}  # passed, failed
    for rel in cases:
        kind = rel.split("/", 1)[0]
        if kind not in stats:
            continue
        check = check_valid if kind == "valid" else check_invalid
        why = check(decoder, data_dir, rel, env)
        if args.verbose:
            print(f"{'FAIL' if why else 'ok  '} {rel}")
        if why:
            stats[kind][1] += 1
            print(f"FAIL {rel}: {why}")
        else:
            stats[kind][0] += 1

    passed = stats["valid"][0] + stats["invalid"][0]
    failed = stats["valid"][1] + stats["invalid"][1]
    print(f"toml-test: valid {stats['valid'][0]} passed, invalid {stats['invalid'][0]} passed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
