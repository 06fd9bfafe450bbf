"""helioctl import-pgbouncer: pgbouncer.ini (with %include, userlist and
hba file) into a HeliosProxy TOML that heliosproxy --check-config accepts,
with a report line per key; PgBouncer's documented examples; and the round
trip: the same psql and pgbench loads against the real PgBouncer (Debian's,
started here on a free loopback port) with the ini and against HeliosProxy
with the import give the same answers."""

import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from conftest import (ALICE, APPDB, MD5USER, ServerConnSampler, free_port, helios_bin, port_accepts,
                      run)

PGBOUNCER = "/usr/sbin/pgbouncer"
PGB_USER = "heliospg"  # pgbouncer refuses to run as root; scripts/pgcluster.sh makes this user
PGBENCH = "/usr/bin/pgbench"
PSQL = "/usr/bin/psql"

STATUSES = {"mapped", "default", "not-needed", "not-mapped", "error"}


def helioctl_import(ini, *args, check=0):
    r = run([str(helios_bin() / "helioctl"), "import-pgbouncer", str(ini), *args], check=False)
    assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def check_config(path):
    return run([str(helios_bin() / "heliosproxy"), "--check-config", str(path)], check=False)


def report_rows(text):
    """Report lines as (source, key, status, what): the key is "[section] name"
    (plus a parameter for [databases]/[users] entries)."""
    rows = []
    for line in text.splitlines()[1:]:
        m = re.match(r"(\S+)\s+(\[\w+\](?: \S+){0,2})\s+(mapped|default|not-needed|not-mapped|"
                     r"error)\s+(.*)$", line)
        if m:
            rows.append(m.groups())
    return rows


def by_key(rows):
    out = {}
    for src, key, status, what in rows:
        out.setdefault(key, []).append((status, what, src))
    return out


# ---------------------------------------------------------------------------
# Every key the issue lists

ISSUE_KEYS_INI = """\
; every [pgbouncer] key issue 19 names, in PgBouncer's syntax
[databases]
full = host=127.0.0.1 port={port} dbname=appdb user=md5user password=md5-pw auth_user=pgb_auth pool_size=7 min_pool_size=1 reserve_pool=2 pool_mode=transaction max_db_connections=9 client_encoding=UTF8 datestyle='ISO, DMY' timezone=Europe/Paris
replica = host=127.0.0.1 port={rport} dbname=appdb
* = host=127.0.0.1 port={port}

[users]
alice = pool_mode=statement max_user_connections=4

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6543
unix_socket_dir = sock
auth_type = md5
auth_file = userlist.txt
auth_hba_file = pg_hba.conf
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1
auth_user = pgb_auth
pool_mode = transaction
default_pool_size = 15
min_pool_size = 2
reserve_pool_size = 3
reserve_pool_timeout = 2.5
max_client_conn = 500
max_db_connections = 40
max_user_connections = 30
server_reset_query = DISCARD ALL
server_reset_query_always = 0
server_check_query = select 1
server_check_delay = 30
server_lifetime = 1800
server_idle_timeout = 300
server_connect_timeout = 7
server_login_retry = 10
query_timeout = 60
query_wait_timeout = 90
client_idle_timeout = 3600
idle_transaction_timeout = 120
client_login_timeout = 45
%include tls.ini
admin_users = alice
stats_users = md5user
ignore_startup_parameters = extra_float_digits
track_extra_parameters = IntervalStyle
max_prepared_statements = 100
application_name_add_host = 1
log_connections = 0
log_disconnections = 1
stats_period = 30
so_reuseport = 1
tcp_keepalive = 1
tcp_keepcnt = 5
tcp_keepidle = 60
tcp_keepintvl = 10
tcp_user_timeout = 1000
"""

TLS_INI = """\
# client_tls_* and server_tls_*, from an %include
client_tls_sslmode = require
client_tls_key_file = server.key
client_tls_cert_file = server.crt
client_tls_ca_file = root.crt
client_tls_protocols = secure
client_tls_ciphers = fast
server_tls_sslmode = verify-ca
server_tls_ca_file = root.crt
server_tls_cert_file = client.crt
server_tls_key_file = client.key
server_tls_protocols = secure
server_tls_ciphers = fast
"""

# issue 19 item 1: the [pgbouncer] settings people set
ISSUE_PGBOUNCER_KEYS = [
    "listen_addr", "listen_port", "unix_socket_dir", "auth_type", "auth_file",
    "auth_hba_file", "auth_query", "auth_user", "pool_mode", "default_pool_size",
    "min_pool_size", "reserve_pool_size", "reserve_pool_timeout", "max_client_conn",
    "max_db_connections", "max_user_connections", "server_reset_query",
    "server_reset_query_always", "server_check_query", "server_check_delay", "server_lifetime",
    "server_idle_timeout", "server_connect_timeout", "server_login_retry", "query_timeout",
    "query_wait_timeout", "client_idle_timeout", "idle_transaction_timeout",
    "client_login_timeout", "client_tls_sslmode", "client_tls_key_file", "client_tls_cert_file",
    "client_tls_ca_file", "client_tls_protocols", "client_tls_ciphers", "server_tls_sslmode",
    "server_tls_ca_file", "server_tls_cert_file", "server_tls_key_file", "server_tls_protocols",
    "server_tls_ciphers", "admin_users", "stats_users", "ignore_startup_parameters",
    "track_extra_parameters", "max_prepared_statements", "application_name_add_host",
    "log_connections", "log_disconnections", "stats_period", "so_reuseport", "tcp_keepalive",
    "tcp_keepcnt", "tcp_keepidle", "tcp_keepintvl", "tcp_user_timeout",
]


def make_tls_files(d):
    """A CA, a server and a client certificate (check-config opens them)."""
    def ossl(*a):
        run(["openssl", *a], timeout=60)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=root",
         "-keyout", str(d / "root.key"), "-out", str(d / "root.crt"))
    for name in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
             str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        ossl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "root.crt"),
             "-CAkey", str(d / "root.key"), "-CAcreateserial", "-days", "2", "-out",
             str(d / f"{name}.crt"))


def test_every_issue_key_is_reported_mapped_where_possible_and_passes_check_config(pg, tmp_path):
    (tmp_path / "pgb.ini").write_text(ISSUE_KEYS_INI.format(port=pg.port, rport=pg.replica_port))
    (tmp_path / "tls.ini").write_text(TLS_INI)
    (tmp_path / "userlist.txt").write_text(
        f'"{ALICE[0]}" "{ALICE[1]}"\n"{MD5USER[0]}" "{MD5USER[1]}"\n"pgb_auth" "pgb-auth-pw"\n')
    (tmp_path / "pg_hba.conf").write_text("host all all 127.0.0.1/32 md5\n")
    make_tls_files(tmp_path)
    out = tmp_path / "helios.toml"
    r = helioctl_import(tmp_path / "pgb.ini", "-o", out)
    rows = report_rows(r.stdout)
    keys = by_key(rows)

    for k in ISSUE_PGBOUNCER_KEYS:
        assert f"[pgbouncer] {k}" in keys, f"{k} missing from the report:\n{r.stdout}"
    assert not [row for row in rows if row[2] == "error"], r.stdout
    # every row says where the key came from; %include files name themselves
    assert keys["[pgbouncer] client_tls_sslmode"][0][2].endswith("tls.ini:2"), keys
    assert keys["[pgbouncer] listen_port"][0][2].endswith("pgb.ini:12")
    # rows come in file order, the PgBouncer defaults last
    lines = [int(src.rsplit(":", 1)[1]) for src, *_ in rows if src.endswith(tuple(
        f"pgb.ini:{n}" for n in range(1, 100)))]
    assert lines == sorted(lines) and len(lines) > 40, lines
    # not mapped keys carry a reason
    for k in ("server_check_delay", "tcp_keepalive", "application_name_add_host",
              "client_tls_ciphers", "server_login_retry"):
        status, why, _ = keys[f"[pgbouncer] {k}"][0]
        assert status == "not-mapped" and len(why) > 20, (k, status, why)
    for k in ("ignore_startup_parameters", "track_extra_parameters", "so_reuseport"):
        assert keys[f"[pgbouncer] {k}"][0][0] == "not-needed", k
    for k in ("full dbname", "full user", "full password", "full auth_user", "full pool_size",
              "full min_pool_size", "full reserve_pool", "full pool_mode",
              "full max_db_connections", "full client_encoding", "full datestyle",
              "full timezone", "full host", "full port", "* host"):
        assert keys[f"[databases] {k}"][0][0] == "mapped", k
    assert keys["[users] alice pool_mode"][0][0] == "mapped"
    assert keys["[users] alice max_user_connections"][0][0] == "mapped"
    # the password of a forced user never shows in the report
    assert "md5-pw" not in r.stdout

    text = out.read_text()
    c = tomllib.loads(text)
    assert c["listen_address"] == "127.0.0.1:6543"
    assert c["unix_socket_dir"] == str(tmp_path / "sock")
    assert c["max_client_conn"] == 500
    assert c["client_idle_timeout_secs"] == 3600
    assert c["client_login_timeout_secs"] == 45
    assert c["admin_users"] == "alice" and c["stats_users"] == "md5user"
    assert (c["log_connections"], c["log_disconnections"]) == (False, True)
    assert c["stats_period_secs"] == 30
    pm = c["pool_mode"]
    assert pm == {
        "mode": "transaction", "max_pool_size": 15, "min_idle": 2, "reserve_pool_size": 3,
        "reserve_pool_timeout_ms": 2500, "max_db_connections": 40, "max_user_connections": 30,
        "reset_query": "DISCARD ALL", "server_lifetime_secs": 1800, "idle_timeout_secs": 300,
        "server_connect_timeout_secs": 7, "query_timeout_secs": 60,
        "query_wait_timeout_secs": 90, "idle_transaction_timeout_secs": 120,
        "max_prepared_statements": 100}, pm
    assert c["auth"] == {"method": "md5", "users_file": str(tmp_path / "userlist.txt"),
                         "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
                         "auth_user": "pgb_auth"}, c["auth"]
    assert c["tls"] == {
        "client_mode": "require", "key_file": str(tmp_path / "server.key"),
        "cert_file": str(tmp_path / "server.crt"), "client_ca_file": str(tmp_path / "root.crt"),
        "server_mode": "verify-full", "ca_file": str(tmp_path / "root.crt"),
        "server_cert_file": str(tmp_path / "client.crt"),
        "server_key_file": str(tmp_path / "client.key")}, c["tls"]
    nodes = {n["name"]: (n["host"], n["port"]) for n in c["nodes"]}
    assert sorted(nodes.values()) == sorted([("127.0.0.1", pg.port),
                                             ("127.0.0.1", pg.replica_port)])
    dbs = {d["name"]: d for d in c["databases"]}
    assert dbs["full"] == {
        "name": "full", "nodes": [n for n, hp in nodes.items() if hp[1] == pg.port],
        "dbname": "appdb", "user": "md5user", "password": "md5-pw", "auth_user": "pgb_auth",
        "pool_size": 7, "min_pool_size": 1, "reserve_pool": 2, "pool_mode": "transaction",
        "max_db_connections": 9, "client_encoding": "UTF8", "datestyle": "ISO, DMY",
        "timezone": "Europe/Paris"}
    assert dbs["replica"]["nodes"] == [n for n, hp in nodes.items() if hp[1] == pg.replica_port]
    assert "*" in dbs and "dbname" not in dbs["*"]
    assert c["users"] == [{"name": "alice", "pool_mode": "statement",
                           "max_user_connections": 4}]
    # what was not mapped is listed in the file too
    assert re.search(r"(?m)^# not-mapped \[pgbouncer\] server_check_delay: ", text)

    chk = check_config(out)
    assert chk.returncode == 0, chk.stdout + chk.stderr


def test_rerun_after_editing_the_ini_replaces_the_output(pg, tmp_path):
    ini = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    base = (f"[databases]\nappdb = host=127.0.0.1 port={pg.port}\n"
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_file = users.txt\n")
    ini.write_text(base + "default_pool_size = 5\n")
    out = tmp_path / "out.toml"
    helioctl_import(ini, "-o", out)
    assert tomllib.loads(out.read_text())["pool_mode"]["max_pool_size"] == 5
    ini.write_text(base + "default_pool_size = 9\nlisten_port = 7000\n")
    helioctl_import(ini, "-o", out)
    c = tomllib.loads(out.read_text())
    assert c["pool_mode"]["max_pool_size"] == 9
    assert c["listen_address"] == "127.0.0.1:7000"
    assert not list(tmp_path.glob("*.tmp"))
    assert check_config(out).returncode == 0


def test_pgbouncer_defaults_that_differ_are_written_as_defaults(pg, tmp_path):
    """An ini that leaves listen_port, auth_type, max_client_conn,
    server_connect_timeout and log_connections unset behaves like PgBouncer's
    defaults, not HeliosProxy's."""
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(f"[databases]\nappdb = host=127.0.0.1 port={pg.port}\n"
                   "[pgbouncer]\nlisten_addr = 127.0.0.1\n")
    r = helioctl_import(ini)  # without -o: TOML on stdout, report on stderr
    c = tomllib.loads(r.stdout)
    keys = by_key(report_rows(r.stderr))
    assert c["listen_address"] == "127.0.0.1:6432"
    assert c["auth"]["method"] == "md5"
    assert c["max_client_conn"] == 100
    assert c["pool_mode"]["server_connect_timeout_secs"] == 15
    assert c["log_connections"] is True and c["log_disconnections"] is True
    # the defaults come after the keys the ini sets
    srcs = [src for src, *_ in report_rows(r.stderr)]
    assert srcs[0].endswith("pgbouncer.ini:2") and srcs[-1] == "(default)", srcs
    first = srcs.index("(default)")
    assert set(srcs[first:]) == {"(default)"}, srcs
    for k in ("listen_port", "auth_type", "max_client_conn", "server_connect_timeout",
              "log_connections"):
        assert keys[f"[pgbouncer] {k}"][0][0] == "default", (k, keys.get(f"[pgbouncer] {k}"))
        assert keys[f"[pgbouncer] {k}"][0][2] == "(default)"


def test_ini_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "main.ini").write_text("[pgbouncer]\nlisten_port = 1\n%include more.ini\n")
    (tmp_path / "more.ini").write_text("; fine\nthis line has no equals sign\n")
    r = helioctl_import(tmp_path / "main.ini", check=2)
    assert f"{tmp_path}/more.ini:2: expected key = value" in r.stderr, r.stderr
    r = helioctl_import(tmp_path / "missing.ini", check=2)
    assert "missing.ini: No such file or directory" in r.stderr


def test_bad_values_are_errors_and_nothing_is_written(pg, tmp_path):
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(f"[databases]\nappdb = host=127.0.0.1 port={pg.port} pool_size=many\n"
                   "[users]\nbob = pool_mode=batch\n"
                   "[pgbouncer]\npool_mode = sometimes\nquery_timeout = soon\n")
    out = tmp_path / "out.toml"
    r = helioctl_import(ini, "-o", out, check=1)
    keys = by_key(report_rows(r.stdout))
    assert keys["[pgbouncer] pool_mode"][0][:2] == ("error", "unknown pool_mode 'sometimes'")
    assert keys["[pgbouncer] query_timeout"][0][0] == "error"
    assert keys["[databases] appdb pool_size"][0][:2] == ("error", "'many' is not a whole number")
    assert keys["[users] bob pool_mode"][0][:2] == ("error", "unknown pool_mode 'batch'")
    assert "nothing written" in r.stdout
    assert not out.exists()


def test_database_without_host_uses_the_unix_socket_dir_or_is_an_error(tmp_path):
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text("[databases]\nfoodb =\n[pgbouncer]\nunix_socket_dir = /run/pg\n")
    r = helioctl_import(ini)
    c = tomllib.loads(r.stdout)
    assert [(n["host"], n["port"]) for n in c["nodes"]] == [("/run/pg", 5432)]
    ini.write_text("[databases]\nfoodb =\n[pgbouncer]\nunix_socket_dir =\n")
    r = helioctl_import(ini, check=1)
    assert by_key(report_rows(r.stderr))["[databases] foodb"][0][:2] == (
        "error", "no host, and unix_socket_dir is empty: no server to use")
    assert r.stderr.rstrip().endswith("1 not mapped, 1 error; nothing written"), r.stderr
    assert r.stdout == ""


def test_hba_file_methods_heliosproxy_lacks_become_reject(pg, tmp_path):
    ini = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    (tmp_path / "hba.conf").write_text(
        "# PgBouncer hba\n"
        "local all all peer\n"
        "host appdb alice 127.0.0.1/32 trust\n"
        "host sales alice 127.0.0.1/32 md5\n"
        "host all all 10.0.0.0 255.0.0.0 scram-sha-256\n"
        "host sameuser all 192.168.0.0/16 md5\n"
        "host appdb +admins 10.1.0.0/16 md5\n"
        "host all all 0.0.0.0/0 md5\n")
    ini.write_text(f"[databases]\nappdb = host=127.0.0.1 port={pg.port}\n"
                   "[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_type = hba\n"
                   "auth_file = users.txt\n")
    # without -o a file that needs changes cannot be written: an error
    r = helioctl_import(ini, "--hba", tmp_path / "hba.conf", check=1)
    assert "give -o" in r.stderr
    out = tmp_path / "helios.toml"
    r = helioctl_import(ini, "--hba", tmp_path / "hba.conf", "-o", out)
    c = tomllib.loads(out.read_text())
    hba = Path(c["auth"]["hba_file"])
    assert hba == tmp_path / "helios.hba.conf"
    rules = [l for l in hba.read_text().splitlines() if l and not l.startswith("#")]
    assert rules == ["local all all reject", "host appdb alice 127.0.0.1/32 trust",
                     "host sales alice 127.0.0.1/32 md5",
                     "host all all 10.0.0.0 255.0.0.0 scram-sha-256",
                     "host all all 192.168.0.0/16 reject",
                     "host appdb all 10.1.0.0/16 reject",
                     "host all all 0.0.0.0/0 md5"]
    assert "method peer is not supported" in r.stdout
    assert re.search(r"(?m)^\(command line\)\s+--hba\s+mapped\s+auth.hba_file = ", r.stdout)
    # --userlist wins over the ini's auth_file, and says so
    (tmp_path / "other.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    r = helioctl_import(ini, "--hba", tmp_path / "hba.conf", "--userlist",
                        tmp_path / "other.txt", "-o", out)
    assert tomllib.loads(out.read_text())["auth"]["users_file"] == str(tmp_path / "other.txt")
    assert re.search(r"(?m)^\(command line\)\s+--userlist\s+mapped\s+auth.users_file = ",
                     r.stdout), r.stdout
    assert check_config(out).returncode == 0


@pytest.mark.parametrize("auth_type,status,want", [
    ("trust", "mapped", {"method": "trust"}),
    ("md5", "mapped", {"method": "md5"}),
    ("scram-sha-256", "mapped", {"method": "scram-sha-256"}),
    ("cert", "mapped", {}),
    ("plain", "not-mapped", {}),
    ("any", "not-mapped", {}),
    ("pam", "not-mapped", {}),
])
def test_every_auth_type_maps_or_says_why_and_passes_check_config(pg, tmp_path, auth_type,
                                                                   status, want):
    ini = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    ini.write_text(f"[databases]\nappdb = host=127.0.0.1 port={pg.port}\n[pgbouncer]\n"
                   f"listen_addr = 127.0.0.1\nauth_type = {auth_type}\nauth_file = users.txt\n")
    out = tmp_path / "helios.toml"
    r = helioctl_import(ini, "-o", out)
    row = by_key(report_rows(r.stdout))["[pgbouncer] auth_type"][0]
    assert row[0] == status, row
    c = tomllib.loads(out.read_text())
    auth = {k: v for k, v in c["auth"].items() if k not in ("users_file", "rules")}
    assert auth == want, c["auth"]
    if auth_type == "cert":
        assert c["auth"]["rules"] == [{"type": "hostssl", "address": "all", "method": "cert"}]
    assert c["auth"]["users_file"] == str(tmp_path / "users.txt")
    chk = check_config(out)
    assert chk.returncode == 0, chk.stdout + chk.stderr


def test_hba_file_heliosproxy_reads_as_is_is_used_in_place(pg, tmp_path):
    ini = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    (tmp_path / "hba.conf").write_text("host all all 127.0.0.1/32 md5\n")
    ini.write_text(f"[databases]\nappdb = host=127.0.0.1 port={pg.port}\n"
                   "[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_type = hba\n"
                   "auth_file = users.txt\nauth_hba_file = hba.conf\n")
    out = tmp_path / "helios.toml"
    helioctl_import(ini, "-o", out)
    assert tomllib.loads(out.read_text())["auth"]["hba_file"] == str(tmp_path / "hba.conf")
    assert not (tmp_path / "helios.hba.conf").exists()
    assert check_config(out).returncode == 0


# ---------------------------------------------------------------------------
# PgBouncer's documented examples (docs "Configuration" and "Usage"),
# written out here

DOC_MINIMAL = """\
[databases]
template1 = host=localhost dbname=template1 auth_user=someuser

[pgbouncer]
pool_mode = session
listen_port = 6432
listen_addr = localhost
auth_type = md5
auth_file = users.txt
logfile = pgbouncer.log
pidfile = pgbouncer.pid
admin_users = someuser
stats_users = stat_collector
"""

DOC_DATABASES = """\
[databases]
; foodb over Unix socket
foodb =

; redirect bardb to bazdb on localhost
bardb = host=localhost dbname=bazdb

; access to destination database will go with single user
forcedb = host=localhost port=300 user=baz password=foo client_encoding=UNICODE datestyle=ISO

[users]
user1 = pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
auth_file = users.txt
"""

DOC_QUICKSTART = """\
[databases]
template1 = host=localhost port=5432 dbname=template1

[pgbouncer]
listen_port = 6432
listen_addr = 127.0.0.1
auth_type = md5
auth_file = userlist.txt
logfile = pgbouncer.log
pidfile = pgbouncer.pid
admin_users = someuser
"""


@pytest.mark.parametrize("name,ini,users", [
    ("minimal", DOC_MINIMAL, "users.txt"),
    ("databases", DOC_DATABASES, "users.txt"),
    ("quickstart", DOC_QUICKSTART, "userlist.txt"),
])
def test_pgbouncer_documented_examples_import_and_pass_check_config(tmp_path, name, ini, users):
    (tmp_path / "pgbouncer.ini").write_text(ini)
    (tmp_path / users).write_text('"someuser" "same_password_as_in_server"\n'
                                  '"stat_collector" "md5b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3"\n')
    out = tmp_path / "helios.toml"
    r = helioctl_import(tmp_path / "pgbouncer.ini", "-o", out)
    keys = by_key(report_rows(r.stdout))
    c = tomllib.loads(out.read_text())
    chk = check_config(out)
    assert chk.returncode == 0, chk.stdout + chk.stderr + out.read_text()
    if name == "minimal":
        assert keys["[pgbouncer] logfile"][0][0] == "not-mapped"
        assert keys["[pgbouncer] pidfile"][0][0] == "not-mapped"
        assert c["listen_address"] == "localhost:6432"
        assert c["databases"][0]["auth_user"] == "someuser"
    if name == "databases":
        dbs = {d["name"]: d for d in c["databases"]}
        nodes = {n["name"]: (n["host"], n["port"]) for n in c["nodes"]}
        # no host: PgBouncer's Unix socket in unix_socket_dir (default /tmp)
        assert nodes[dbs["foodb"]["nodes"][0]] == ("/tmp", 5432)
        assert nodes[dbs["bardb"]["nodes"][0]] == ("localhost", 5432)
        assert dbs["bardb"]["dbname"] == "bazdb"
        assert nodes[dbs["forcedb"]["nodes"][0]] == ("localhost", 300)
        assert (dbs["forcedb"]["user"], dbs["forcedb"]["password"]) == ("baz", "foo")
        assert dbs["forcedb"]["client_encoding"] == "UNICODE"
        assert c["users"] == [{"name": "user1", "pool_mode": "session"}]


def test_debian_shipped_pgbouncer_ini_imports(tmp_path):
    """Debian's /etc/pgbouncer/pgbouncer.ini, PgBouncer's commented sample."""
    src = Path("/etc/pgbouncer/pgbouncer.ini")
    if not src.exists():
        pytest.fail("/etc/pgbouncer/pgbouncer.ini missing: install pgbouncer (scripts/deps.sh)")
    # as shipped it has no [databases] entry: nothing to serve, said so
    out = tmp_path / "debian.toml"
    r = helioctl_import(src, "-o", out, check=1)
    errors = [x for x in report_rows(r.stdout) if x[2] == "error"]
    assert [x[1] for x in errors] == ["[databases]"], r.stdout
    assert not out.exists()
    # with one database added after it (an %include of the shipped file)
    (tmp_path / "mine.ini").write_text(f"%include {src}\n[databases]\n"
                                       "appdb = host=127.0.0.1 port=5432\n")
    r = helioctl_import(tmp_path / "mine.ini", "-o", out)
    keys = by_key(report_rows(r.stdout))
    assert keys["[pgbouncer] logfile"][0][0] == "not-mapped"
    assert keys["[pgbouncer] auth_file"][0][1].startswith(
        'auth.users_file = "/etc/pgbouncer/userlist.txt"')
    c = tomllib.loads(out.read_text())
    assert c["listen_address"] == "localhost:6432"
    assert c["unix_socket_dir"] == "/var/run/postgresql"
    chk = check_config(out)
    assert chk.returncode == 0, chk.stdout + chk.stderr


# ---------------------------------------------------------------------------
# Round trip against the real PgBouncer

ROUND_TRIP_INI = """\
;; the same file drives PgBouncer and, imported, HeliosProxy
[databases]
appdb = host=127.0.0.1 port={port}
; an alias with its own small transaction pool
tx = host=127.0.0.1 port={port} dbname=postgres pool_size=2 pool_mode=transaction
; every client becomes md5user, with the server's settings forced
forced = host=127.0.0.1 port={port} dbname=appdb user=md5user password=md5-pw timezone=Asia/Tokyo datestyle='SQL, DMY'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = md5
auth_file = {dir}/userlist.txt
pool_mode = session
default_pool_size = 4
max_client_conn = 100
server_tls_sslmode = disable
logfile = {dir}/pgbouncer.log
"""

PSQL_CHECKS = [
    ("appdb", "SELECT current_database(), current_user"),
    ("tx", "SELECT current_database(), current_user"),
    ("forced", "SELECT current_database(), current_user"),
    ("forced", "SHOW TimeZone"),
    ("forced", "SHOW DateStyle"),
    ("forced", "SELECT timestamptz '2024-01-02 03:04:05+00', date '2024-03-04'"),
    ("tx", "BEGIN; SELECT n >= 0 FROM rt_counter; COMMIT"),
    ("nosuchdb", "SELECT 1"),
]

RT_DB = "postgres"  # the tx alias's real database: its servers are the only alice ones there
COUNTER_SCRIPT = "UPDATE rt_counter SET n = n + 1 WHERE id = 1;\nSELECT n FROM rt_counter WHERE id = 1;\n"


def psql(port, dbname, sql, pg, user=ALICE):
    env = pg.env(password=user[1])
    r = subprocess.run([PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                        str(port), "-U", user[0], "-d", dbname, "-c", sql],
                       capture_output=True, text=True, env=env, timeout=60)
    return (r.returncode, r.stdout.strip(), r.stderr.strip())


def pgbench(port, dbname, pg, script, clients=4, tx=100, mode="simple"):
    env = pg.env(password=ALICE[1])
    r = subprocess.run([PGBENCH, "-n", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
                        "-M", mode, "-c", str(clients), "-j", "2", "-t", str(tx), "-f",
                        str(script), dbname],
                       capture_output=True, text=True, env=env, timeout=300)
    processed = re.search(r"number of transactions actually processed: (\d+)/(\d+)", r.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    return {"rc": r.returncode,
            "processed": processed.groups() if processed else None,
            "failed": int(failed.group(1)) if failed else None,
            "out": r.stdout + r.stderr}


def counter(pg):
    with pg.superuser(RT_DB) as su:
        return su.execute("SELECT n FROM rt_counter WHERE id = 1").fetchone()[0]


def run_loads(port, pg, script):
    """The psql checks, then pgbench on the transaction-pooled alias while
    pg_stat_activity is sampled; returns what a client can see."""
    answers = [psql(port, db, sql, pg) for db, sql in PSQL_CHECKS]
    before = counter(pg)
    with ServerConnSampler(pg, ALICE[0], RT_DB) as s:
        bench = pgbench(port, "tx", pg, script)
    after = counter(pg)
    session = pgbench(port, "appdb", pg, script.with_name("select.sql"), clients=2, tx=50)
    # the extended protocol (unnamed statements: PgBouncer 1.18 has no
    # named prepared statements in transaction mode) through the tx pool
    extended = pgbench(port, "tx", pg, script, clients=2, tx=50, mode="extended")
    return {"answers": answers, "bench": bench, "delta": after - before,
            "max_servers": max(s.samples, default=-1), "session": session,
            "extended": extended, "total": counter(pg)}


class PgBouncerProc:
    def __init__(self, ini, cwd):
        cmd = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:
            cmd = ["setpriv", f"--reuid={PGB_USER}", f"--regid={PGB_USER}", "--init-groups"] + cmd
        self.err = open(cwd / "pgbouncer.stderr", "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=subprocess.STDOUT, cwd=cwd)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # PgBouncer's safe shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.err.close()


def pgbouncer_dir(d):
    """d made PgBouncer's (it runs as PGB_USER and writes its log there)."""
    if not Path(PGBOUNCER).exists():
        pytest.fail(f"{PGBOUNCER} missing: install pgbouncer (scripts/deps.sh)")
    if os.geteuid() == 0:
        shutil.chown(d, PGB_USER, PGB_USER)
    return d


def against_both(pg, proxy, d, ini, listen, loads):
    """loads() against PgBouncer running ini, then against HeliosProxy
    running its import on the same port (a drop-in); returns both results."""
    pgb = PgBouncerProc(ini, d)
    try:
        deadline = time.monotonic() + 15
        while not port_accepts(listen) and time.monotonic() < deadline:
            assert pgb.proc.poll() is None, (d / "pgbouncer.stderr").read_text()
            time.sleep(0.05)
        assert port_accepts(listen), "PgBouncer did not listen"
        want = loads()
    finally:
        pgb.stop()
    for user, db in ((ALICE[0], APPDB), (ALICE[0], RT_DB), (MD5USER[0], APPDB)):
        pg.wait_server_conns(user, db, at_most=0)

    out = d / "helios.toml"
    helioctl_import(ini, "-o", out)
    chk = check_config(out)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    deadline = time.monotonic() + 10
    while port_accepts(listen) and time.monotonic() < deadline:
        time.sleep(0.05)
    p = proxy(out.read_text(), listen_address=f"127.0.0.1:{listen}")
    assert p.port == listen
    return want, loads()


def test_round_trip_psql_and_pgbench_answers_match_pgbouncer(pg, proxy, short_dir):
    d = pgbouncer_dir(short_dir)
    listen = free_port()
    ini = d / "pgbouncer.ini"
    ini.write_text(ROUND_TRIP_INI.format(port=pg.port, listen=listen, dir=d))
    (d / "userlist.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n'
                                    f'"{MD5USER[0]}" "{MD5USER[1]}"\n')
    os.chmod(d / "userlist.txt", 0o644)
    script = d / "counter.sql"
    script.write_text(COUNTER_SCRIPT)
    (d / "select.sql").write_text("SELECT current_user, current_database(), 6 * 7;\n")
    with pg.superuser(RT_DB) as su:
        su.execute("DROP TABLE IF EXISTS rt_counter")
        su.execute("CREATE TABLE rt_counter (id int PRIMARY KEY, n bigint NOT NULL)")
        su.execute("INSERT INTO rt_counter VALUES (1, 0)")
        su.execute("GRANT SELECT, UPDATE ON rt_counter TO alice")

    want, got = against_both(pg, proxy, d, ini, listen, lambda: run_loads(listen, pg, script))

    # what PgBouncer answered is what PostgreSQL says: the test means something
    assert want["answers"][0] == (0, f"{APPDB}|{ALICE[0]}", "")
    assert want["answers"][2] == (0, f"{APPDB}|{MD5USER[0]}", "")
    assert want["answers"][3][1] == "Asia/Tokyo"
    assert "no such database: nosuchdb" in want["answers"][-1][2]
    assert want["bench"]["processed"] == ("400", "400") and want["bench"]["failed"] == 0
    assert want["delta"] == 400
    assert 1 <= want["max_servers"] <= 2, want["max_servers"]
    assert want["session"]["processed"] == ("100", "100"), want["session"]["out"]
    assert want["extended"]["processed"] == ("100", "100"), want["extended"]["out"]
    assert want["total"] == 500  # 400 simple + 100 extended increments

    for (db, sql), w, g in zip(PSQL_CHECKS, want["answers"], got["answers"]):
        assert g == w, f"{db}: {sql}\nPgBouncer: {w}\nHeliosProxy: {g}"
    for k in ("rc", "processed", "failed"):
        assert got["bench"][k] == want["bench"][k], (k, want["bench"]["out"], got["bench"]["out"])
        assert got["session"][k] == want["session"][k], (k, got["session"]["out"])
        assert got["extended"][k] == want["extended"][k], (k, got["extended"]["out"])
    assert got["delta"] == want["delta"]
    assert got["total"] == 2 * want["total"]  # the counter was not reset in between
    assert 1 <= got["max_servers"] <= 2, got["max_servers"]


def test_check_config_hints_for_pgbouncer_names_agree_with_the_import(pg, tmp_path):
    """A PgBouncer name written in the TOML by hand is refused with a hint
    (common/cfg_keys.c); the hint names the key the import maps it to, so
    the two tables of PgBouncer names cannot drift apart unnoticed."""
    (tmp_path / "pgb.ini").write_text(ISSUE_KEYS_INI.format(port=pg.port, rport=pg.replica_port))
    (tmp_path / "tls.ini").write_text(TLS_INI)
    (tmp_path / "userlist.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    (tmp_path / "pg_hba.conf").write_text("host all all 127.0.0.1/32 md5\n")
    r = helioctl_import(tmp_path / "pgb.ini", "-o", tmp_path / "out.toml")
    compared = 0
    for _, key, status, what in report_rows(r.stdout):
        m = re.match(r"([\w.]+) = ", what)
        name = key.split()[1]
        if not key.startswith("[pgbouncer]") or status != "mapped" or not m or m[1] == name:
            continue
        toml = tmp_path / "hand.toml"
        toml.write_text(f'{name} = 1\n[[nodes]]\nhost = "127.0.0.1"\n')
        chk = check_config(toml)
        assert chk.returncode != 0 and f"'{m[1]}'" in chk.stdout + chk.stderr, (name, m[1], chk)
        compared += 1
    assert compared >= 30, compared


HBA_INI = """\
[databases]
appdb = host=127.0.0.1 port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = hba
auth_file = {dir}/userlist.txt
auth_hba_file = {dir}/hba.conf
server_tls_sslmode = disable
logfile = {dir}/pgbouncer.log
"""

HBA_RULES = """\
# PgBouncer's hba dialect, a subset of pg_hba.conf
host  appdb  md5user  127.0.0.1/32  reject
host  appdb  alice    127.0.0.1/32  md5
"""


def test_round_trip_auth_type_hba_admits_and_refuses_the_same_logins(pg, proxy, short_dir):
    d = pgbouncer_dir(short_dir)
    listen = free_port()
    ini = d / "pgbouncer.ini"
    ini.write_text(HBA_INI.format(port=pg.port, listen=listen, dir=d))
    (d / "userlist.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n'
                                    f'"{MD5USER[0]}" "{MD5USER[1]}"\n')
    (d / "hba.conf").write_text(HBA_RULES)

    def loads():
        return [psql(listen, APPDB, "SELECT current_user", pg, user=u)
                for u in (ALICE, MD5USER, (ALICE[0], "wrong-pw"))]

    want, got = against_both(pg, proxy, d, ini, listen, loads)
    # PgBouncer: alice in, md5user refused by its rule, a wrong password refused
    assert [w[:2] for w in want] == [(0, ALICE[0]), (2, ""), (2, "")], want
    assert [g[:2] for g in got] == [w[:2] for w in want], got
    # the texts differ, as docs/migrating-from-pgbouncer.md says: PostgreSQL's
    # own where PgBouncer has shorter ones
    assert want[1][2].endswith("FATAL:  login rejected"), want
    assert got[1][2].endswith('FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", '
                              'user "md5user", database "appdb", no encryption'), got
    assert want[2][2].endswith("FATAL:  password authentication failed"), want
    assert got[2][2].endswith('FATAL:  password authentication failed for user "alice"'), got
    # the file HeliosProxy reads every line of the same way: used in place
    c = tomllib.loads((d / "helios.toml").read_text())
    assert c["auth"]["hba_file"] == str(d / "hba.conf")


USERS_INI = """\
[databases]
stmt = host=127.0.0.1 port={port} dbname=postgres pool_mode=statement pool_size=3

[users]
alice = max_user_connections=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = md5
auth_file = {dir}/userlist.txt
server_tls_sslmode = disable
logfile = {dir}/pgbouncer.log
"""


def test_round_trip_statement_mode_and_user_cap_match_pgbouncer(pg, proxy, short_dir):
    """[databases] pool_mode=statement and [users] max_user_connections: the
    same pgbench load keeps alice to one server connection on both, and a
    transaction block is refused on both (pg_stat_activity sampled)."""
    d = pgbouncer_dir(short_dir)
    listen = free_port()
    ini = d / "pgbouncer.ini"
    ini.write_text(USERS_INI.format(port=pg.port, listen=listen, dir=d))
    (d / "userlist.txt").write_text(f'"{ALICE[0]}" "{ALICE[1]}"\n')
    script = d / "select.sql"
    script.write_text("SELECT current_user, current_database(), 6 * 7;\n")

    def loads():
        one = psql(listen, "stmt", "SELECT current_database(), current_user", pg)
        with ServerConnSampler(pg, ALICE[0], RT_DB) as s:
            bench = pgbench(listen, "stmt", pg, script, clients=3, tx=100)
        block = subprocess.run(
            [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(listen), "-U", ALICE[0], "-d", "stmt", "-c", "BEGIN", "-c", "SELECT 1"],
            capture_output=True, text=True, env=pg.env(password=ALICE[1]), timeout=60)
        return {"one": one, "bench": bench, "max_servers": max(s.samples, default=-1),
                "block": (block.returncode, block.stdout.strip(), block.stderr.strip())}

    want, got = against_both(pg, proxy, d, ini, listen, loads)
    assert want["one"] == (0, f"{RT_DB}|{ALICE[0]}", ""), want
    assert got["one"] == want["one"]
    for r in (want, got):
        assert r["bench"]["processed"] == ("300", "300") and r["bench"]["failed"] == 0, r["bench"]
        # pool_size 3 but one connection for alice: the user cap holds
        assert r["max_servers"] == 1, r["max_servers"]
    # both refuse the block; PgBouncer closes the client (FATAL, psql exit
    # 2), HeliosProxy answers ERROR 0A000 and keeps it (exit 1): a documented
    # difference
    assert want["block"][0] == 2 and want["block"][2].startswith(
        "FATAL:  transaction blocks not allowed in statement pooling mode"), want["block"]
    assert got["block"][0] == 1 and got["block"][2].startswith(
        "ERROR:  transaction blocks are not allowed in statement pooling mode"), got["block"]
