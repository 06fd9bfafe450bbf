"""The admin console as PgBouncer 1.25 tooling uses it (issue 19): the
database name "pgbouncer", stats_users, SHOW POOLS with one row per
(database, user) under tenants, the process commands (KILL, KILL_CLIENT,
DISABLE/ENABLE, RECONNECT/WAIT_CLOSE, SET, SHUTDOWN), and Debian's
prometheus-pgbouncer-exporter scraping it with a plain dbname=pgbouncer DSN
and a stats user."""

import os
import socket
import subprocess
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, free_port, port_accepts, wait_for

EXPORTER = "/usr/bin/prometheus-pgbouncer-exporter"
STATS = MD5USER  # a stats user: SHOW only


def console(p, user=ALICE, dbname="pgbouncer"):
    # simple Query only, as on PgBouncer's console: psycopg would prepare a
    # statement run a sixth time
    return psycopg.connect(p.dsn(user[0], user[1], dbname), autocommit=True,
                           prepare_threshold=None)


def show(adm, what):
    cur = adm.execute(f"SHOW {what}")
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def cfg_with_console(config, mode="transaction", **top):
    return config(mode=mode, admin_users=ALICE[0], stats_users=STATS[0], **top)


# ---------------------------------------------------------------------------
# who may use the console, under which name


def test_console_answers_as_pgbouncer_and_heliosproxy_databases(proxy, config):
    p = proxy(cfg_with_console(config))
    for name in ("pgbouncer", "heliosproxy"):
        with console(p, dbname=name) as adm:
            assert adm.execute("SHOW VERSION").fetchone()[0].startswith("HeliosProxy")


def test_stats_user_may_show_but_not_change_anything(proxy, config):
    p = proxy(cfg_with_console(config))
    with p.connect() as c:
        c.execute("SELECT 1")
        with console(p, STATS) as adm:
            assert any(r["database"] == APPDB for r in show(adm, "POOLS"))
            assert show(adm, "STATS") and show(adm, "CONFIG")
            for sql in ("PAUSE", "RELOAD", "KILL", "SHUTDOWN", "SET default_pool_size = 5",
                        "DISABLE appdb", "SHOW FDS"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                    adm.execute(sql)
                assert "stats_users member may only run SHOW" in str(e.value), sql
            # the session goes on after a refusal
            assert show(adm, "LISTS")
        # nothing was paused or killed
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_user_in_neither_list_is_refused_with_42501(proxy, config, pg):
    cfg = config(mode="transaction", admin_users=ALICE[0])
    p = proxy(cfg)
    with pytest.raises(psycopg.OperationalError) as e:
        console(p, MD5USER)
    assert "not in admin_users or stats_users" in str(e.value)


# ---------------------------------------------------------------------------
# SHOW answers


def test_show_pools_has_one_row_per_database_and_user_with_two_tenants(proxy, config):
    """Two tenants mapped by startup setting use the same (database, user):
    PgBouncer tooling keys rows by that pair, so they are one row, its
    counts summed, the tenants listed."""
    cfg = cfg_with_console(config)
    cfg["tenancy"] = {"map_by": "startup"}
    cfg["tenants"] = [{"id": "ta"}, {"id": "tb"}]
    p = proxy(cfg)
    a = p.connect(options="-c helios.tenant=ta")
    b = p.connect(options="-c helios.tenant=tb")
    try:
        a.execute("SELECT 1")
        b.execute("SELECT 1")
        with console(p) as adm:
            rows = [r for r in show(adm, "POOLS") if r["database"] == APPDB]
        pairs = [(r["database"], r["user"]) for r in rows]
        assert len(pairs) == len(set(pairs)), rows
        (row,) = [r for r in rows if r["user"] == ALICE[0]]
        assert set(row["tenant"].split(",")) == {"ta", "tb"}, row
        assert row["cl_active"] == 2, row
        assert row["load_balance_hosts"] is None
    finally:
        a.close()
        b.close()


def test_show_clients_ids_states_and_stats_columns_of_pgbouncer_1_25(proxy, config):
    p = proxy(cfg_with_console(config))
    with p.connect() as c:
        c.execute("SELECT 1")
        with console(p) as adm:
            clients = show(adm, "CLIENTS")
            mine = [r for r in clients if r["database"] == APPDB]
            assert len(mine) == 1, clients
            assert mine[0]["state"] == "idle"  # 1.25: no query in flight
            assert mine[0]["replication"] == "none"
            assert mine[0]["id"] > 0 and mine[0]["ptr"] == f"c{mine[0]['id']}"
            (st,) = [r for r in show(adm, "STATS") if r["database"] == APPDB]
            # one server assignment per transaction in transaction pooling
            assert st["total_server_assignment_count"] >= 1
            assert st["total_requests"] == st["total_query_count"]
            assert st["total_client_login_count"] == 1
            totals = {r["name"]: r["value"] for r in show(adm, "TOTALS")}
            assert totals["total_query_count"] >= st["total_query_count"]
            state = {r["key"]: r["value"] for r in show(adm, "STATE")}
            assert state == {"active": "yes", "paused": "no", "suspended": "no"}
            users = {r["name"]: r for r in show(adm, "USERS")}
            assert users[ALICE[0]]["current_client_connections"] >= 1
            sockets = show(adm, "SOCKETS")
            assert {r["type"] for r in sockets} == {"C", "S"}


def test_named_prepared_statements_are_counted_as_pgbouncer_does(proxy, config):
    """Transaction pooling: a client's named Parse, the Parse the proxy sends
    to a server, each Bind of the named statement (SHOW STATS), and the
    statements a client and a server hold (SHOW CLIENTS / SERVERS)."""
    p = proxy(cfg_with_console(config))
    with console(p) as adm:
        def st():
            return [r for r in show(adm, "STATS") if r["database"] == APPDB]

        before = st()[0] if st() else {"total_client_parse_count": 0,
                                       "total_server_parse_count": 0, "total_bind_count": 0}
        with p.connect() as c:
            for i in range(3):
                assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone() == (i + 1,)
            (me,) = [r for r in show(adm, "CLIENTS") if r["database"] == APPDB]
            assert me["prepared_statements"] == 1, me
            servers = [r for r in show(adm, "SERVERS") if r["database"] == APPDB]
            assert max(r["prepared_statements"] for r in servers) == 1, servers
        (after,) = st()
    assert after["total_client_parse_count"] - before["total_client_parse_count"] == 1, after
    assert after["total_server_parse_count"] - before["total_server_parse_count"] == 1, after
    assert after["total_bind_count"] - before["total_bind_count"] == 3, after


def test_show_fds_and_suspend_say_takeover_instead(proxy, config):
    p = proxy(cfg_with_console(config))
    with console(p) as adm:
        for sql in ("SHOW FDS", "SUSPEND"):
            with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
                adm.execute(sql)
            assert "--takeover" in str(e.value)


# ---------------------------------------------------------------------------
# process commands


def test_kill_client_closes_that_client_only(proxy, config):
    p = proxy(cfg_with_console(config))
    victim = p.connect(application_name="victim")
    other = p.connect(application_name="other")
    try:
        victim.execute("SELECT 1")
        other.execute("SELECT 1")
        with console(p) as adm:
            (target,) = [r["id"] for r in show(adm, "CLIENTS")
                         if r["application_name"] == "victim"]
            adm.execute(f"KILL_CLIENT {target}")
            with pytest.raises(psycopg.errors.UndefinedObject) as e:
                adm.execute("KILL_CLIENT 999999999")
            assert "no client with id 999999999" in str(e.value)
            wait_for(lambda: [r["application_name"] for r in show(adm, "CLIENTS")
                              if r["database"] == APPDB] == ["other"])
        with pytest.raises(psycopg.OperationalError) as e:
            victim.execute("SELECT 1")
        assert "KILL_CLIENT" in str(e.value)
        assert other.execute("SELECT 2").fetchone() == (2,)
    finally:
        victim.close()
        other.close()


def _alive(conn):
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def closing_words(p, conn, attempt):
    """Runs attempt() until the proxy's close of conn shows (OperationalError);
    returns why it was closed: what the client was told (the error, the
    notices) and the proxy's log line for that client. The client may not
    get to read the FATAL: libpq reports a write into a connection the
    proxy has closed as "server closed the connection unexpectedly" when
    the reset beats the message (seen once under ASan in make check)."""
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    local = socket.socket(fileno=os.dup(conn.pgconn.socket))
    port = local.getsockname()[1]
    local.close()
    with pytest.raises(psycopg.OperationalError) as e:
        wait_for(lambda: attempt() and False, timeout=5)
    logged = p.wait_log(rf":{port} .*: closing: (.*)$", timeout=5)
    return " ".join([str(e.value)] + notices + ([logged.group(1)] if logged else []))


def test_kill_database_closes_its_clients_and_holds_new_ones_until_resume(proxy, config):
    p = proxy(cfg_with_console(config))
    c = p.connect()
    c.execute("SELECT 1")
    with console(p) as adm:
        adm.execute(f"KILL {APPDB}")
        told = closing_words(p, c, lambda: c.execute("SELECT 1"))
        assert "KILL" in told or "terminat" in told
        # a new client waits (paused) until RESUME
        got = []

        def late():
            with p.connect() as n:
                got.append(n.execute("SELECT 7").fetchone()[0])

        import threading
        t = threading.Thread(target=late)
        t.start()
        time.sleep(0.5)
        assert got == []
        adm.execute(f"RESUME {APPDB}")
        t.join(10)
        assert got == [7]
    c.close()


def test_disable_refuses_new_logins_and_enable_lets_them_in(proxy, config):
    p = proxy(cfg_with_console(config))
    with p.connect() as held:
        held.execute("SELECT 1")
        with console(p) as adm:
            adm.execute(f"DISABLE {APPDB}")
            (db,) = [r for r in show(adm, "DATABASES") if r["name"] == APPDB]
            assert db["disabled"] == 1
            with pytest.raises(psycopg.OperationalError) as e:
                p.connect()
            assert f"database does not allow connections: {APPDB}" in str(e.value)
            # a client already in stays
            assert held.execute("SELECT 2").fetchone() == (2,)
            adm.execute(f"ENABLE {APPDB}")
            with p.connect() as again:
                assert again.execute("SELECT 3").fetchone() == (3,)


def test_reconnect_replaces_server_connections_and_wait_close_waits(proxy, config, pg):
    p = proxy(cfg_with_console(config, mode="session"))
    busy = p.connect()
    idle = p.connect()
    old_busy = busy.execute("SELECT pg_backend_pid()").fetchone()[0]
    idle.execute("SELECT 1")
    idle.close()  # its server goes back to the pool, idle
    busy.execute("BEGIN")
    with console(p) as adm:
        adm.execute(f"RECONNECT {APPDB}")
        servers = show(adm, "SERVERS")
        assert any(r["close_needed"] == 1 for r in servers), servers
        busy.execute("COMMIT")
        busy.close()  # session mode: released now, and closed
        adm.execute(f"WAIT_CLOSE {APPDB}")
        assert not any(r["close_needed"] for r in show(adm, "SERVERS"))
    # the old backend is gone from the server
    with pg.superuser() as su:
        pids = [r[0] for r in su.execute("SELECT pid FROM pg_stat_activity").fetchall()]
    assert old_busy not in pids
    with p.connect() as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] != old_busy


def test_set_changes_live_config_under_pgbouncer_names(proxy, config):
    p = proxy(cfg_with_console(config))
    with console(p) as adm:
        adm.execute("SET default_pool_size = 7")
        adm.execute("SET reserve_pool_timeout = 3")

        def value(key):
            return {r["key"]: r["value"] for r in show(adm, "CONFIG")}[key]

        wait_for(lambda: value("pool_mode.max_pool_size") == "7")
        assert value("pool_mode.reserve_pool_timeout_ms") == "3000"
        with pytest.raises(psycopg.errors.UndefinedObject) as e:
            adm.execute("SET dns_max_ttl = 5")
        assert "unknown setting" in str(e.value)
        with pytest.raises(psycopg.Error) as e:
            adm.execute("SET default_pool_size = many")
        assert "pool_mode.max_pool_size" in str(e.value) or "many" in str(e.value)


def test_shutdown_wait_for_clients_exits_once_clients_leave(proxy, config):
    p = proxy(cfg_with_console(config, shutdown_timeout_secs=60))
    c = p.connect()
    c.execute("SELECT 1")
    adm = console(p)  # an admin session does not hold the shutdown
    adm.execute("SHUTDOWN WAIT_FOR_CLIENTS")
    time.sleep(1.0)
    assert p.running(), "exited while a client was still connected"
    assert c.execute("SELECT 2").fetchone() == (2,)
    assert not port_accepts(p.port), "still accepting new clients"
    c.close()
    p.wait(15)
    assert not p.running()
    adm.close()


def test_shutdown_closes_everyone_at_once(proxy, config):
    p = proxy(cfg_with_console(config, shutdown_timeout_secs=60))
    c = p.connect()
    c.execute("SELECT 1")
    with console(p) as adm:
        adm.execute("SHUTDOWN")
    p.wait(15)
    assert not p.running()
    with pytest.raises(psycopg.OperationalError):
        c.execute("SELECT 1")
    c.close()


def test_shutdown_wait_for_servers_closes_idle_clients_and_lets_transactions_end(proxy, config):
    p = proxy(cfg_with_console(config, shutdown_timeout_secs=60))
    idle, busy = p.connect(), p.connect()
    idle.execute("SELECT 1")  # transaction pooling: holds no server now
    busy.execute("BEGIN")
    busy.execute("SELECT 1")  # holds its server until COMMIT
    with console(p) as adm:
        adm.execute("SHUTDOWN WAIT_FOR_SERVERS")
    assert "shutdown" in closing_words(p, idle, lambda: idle.execute("SELECT 1"))
    assert p.running()
    assert busy.execute("SELECT 2").fetchone() == (2,)
    busy.execute("COMMIT")  # its server is released: nothing holds the process
    p.wait(15)
    assert not p.running()
    idle.close()
    busy.close()


def test_show_databases_lists_database_entries_and_their_connections(proxy, config):
    cfg = cfg_with_console(config, pool={"reserve_pool_size": 2})
    cfg["databases"] = [
        {"name": "app", "dbname": APPDB, "pool_size": 4, "pool_mode": "session",
         "max_db_connections": 6},
        {"name": APPDB},
    ]
    p = proxy(cfg)
    with p.connect(dbname="app") as c:
        c.execute("SELECT 1")
        with console(p) as adm:
            dbs = {r["name"]: r for r in show(adm, "DATABASES")}
            pools = [(r["database"], r["user"]) for r in show(adm, "POOLS")]
    assert set(dbs) == {"app", APPDB}, dbs
    app = dbs["app"]
    assert (app["database"], app["pool_size"], app["pool_mode"], app["max_connections"]) == \
        (APPDB, 4, "session", 6), app
    assert app["current_connections"] == 1 and app["current_client_connections"] == 1, app
    assert app["reserve_pool_size"] == app["reserve_pool"] == 2
    assert dbs[APPDB]["pool_mode"] is None  # inherits
    assert dbs[APPDB]["current_connections"] == 0
    assert ("app", ALICE[0]) in pools


# ---------------------------------------------------------------------------
# Debian's prometheus-pgbouncer-exporter


def _start_exporter(p, user, port, log):
    env = dict(os.environ, PGPASSWORD=user[1])
    for k in ("PORT", "HOST", "CONFIG", "PGBOUNCER_PORT", "PGBOUNCER_USER", "PGBOUNCER_HOST",
              "PGBOUNCER_DATABASES"):
        env.pop(k, None)
    return subprocess.Popen(
        [EXPORTER, "--host", "127.0.0.1", "--port", str(port), "--pgbouncer-host", "127.0.0.1",
         "--pgbouncer-port", str(p.port), "--pgbouncer-user", user[0]],
        env=env, stdout=log, stderr=subprocess.STDOUT)


def _scrape(port):
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("pgbouncer_"):
                samples.append((s.name, tuple(sorted(s.labels.items())), s.value))
    return samples


@pytest.mark.skipif(not os.path.exists(EXPORTER), reason="prometheus-pgbouncer-exporter is "
                    "not installed (scripts/deps.sh installs it)")
def test_debian_exporter_scrapes_the_console_and_its_series_match_show(proxy, config, tmp_path):
    """The exporter connects with dbname=pgbouncer as a stats user, as it
    would to PgBouncer; every series it publishes equals what SHOW says,
    and no (name, labels) pair repeats even with two tenants on one
    (database, user)."""
    cfg = cfg_with_console(config)
    cfg["tenancy"] = {"map_by": "startup"}
    cfg["tenants"] = [{"id": "ta"}, {"id": "tb"}]
    p = proxy(cfg)
    held = [p.connect(options="-c helios.tenant=ta"), p.connect(options="-c helios.tenant=tb"),
            p.connect(MD5USER[0], MD5USER[1], options="-c helios.tenant=ta")]
    for i, c in enumerate(held):
        for _ in range(5 + i):
            c.execute("SELECT 1")
    port = free_port()
    log = open(tmp_path / "exporter.log", "wb")
    exp = _start_exporter(p, STATS, port, log)
    adm = console(p, STATS)  # open while the exporter scrapes: both are clients
    try:
        assert wait_for(lambda: port_accepts(port), timeout=20), \
            (tmp_path / "exporter.log").read_text()
        samples = _scrape(port)
        keys = [(n, l) for n, l, _ in samples]
        assert len(keys) == len(set(keys)), "duplicate series: the scrape would be rejected"
        got = {(n, l): v for n, l, v in samples}
        pools = show(adm, "POOLS")
        stats = show(adm, "STATS")
        dbs = show(adm, "DATABASES")
        lists = {r["list"]: r["items"] for r in show(adm, "LISTS")}

        def g(name, **labels):
            return got[(name, tuple(sorted(labels.items())))]

        for r in pools:
            lab = {"database": r["database"], "user": r["user"]}
            assert g("pgbouncer_active_clients", **lab) == r["cl_active"], r
            assert g("pgbouncer_waiting_clients", **lab) == r["cl_waiting"], r
        (alice,) = [r for r in pools if (r["database"], r["user"]) == (APPDB, ALICE[0])]
        assert alice["cl_active"] == 2  # both tenants' clients, one row
        for r in stats:
            lab = {"database": r["database"]}
            assert g("pgbouncer_requests_total", **lab) == r["total_query_count"] > 0, r
            assert g("pgbouncer_received_bytes_total", **lab) == r["total_received"], r
            assert g("pgbouncer_sent_bytes_total", **lab) == r["total_sent"], r
            assert g("pgbouncer_query_microseconds_total", **lab) == r["total_query_time"], r
        assert any(r["database"] == APPDB and r["total_query_count"] >= 18 for r in stats), stats
        for r in dbs:
            assert g("pgbouncer_pool_size", database=r["database"]) == r["pool_size"], r
            assert g("pgbouncer_reserve_pool", database=r["database"]) == r["reserve_pool"], r
        # the exporter's own session and ours are clients too: both were
        # connected for the scrape and for SHOW LISTS
        assert g("pgbouncer_used_clients") == lists["used_clients"]
        assert g("pgbouncer_pools") == lists["pools"] == len(pools)
        assert g("pgbouncer_databases") == lists["databases"]
        assert g("pgbouncer_users") == lists["users"]
    finally:
        adm.close()
        exp.terminate()
        exp.wait(10)
        log.close()
        for c in held:
            c.close()
