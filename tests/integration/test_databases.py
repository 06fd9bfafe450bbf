"""Issue 19: PgBouncer's model in the data plane.

[[databases]] entries (alias -> real database, forced user, startup
parameters, own pool size and mode, max_db_connections), [[users]] entries
(mode, max_user_connections), the reserve pool, and the timeouts
query_timeout, idle_transaction_timeout and client_idle_timeout. Caps are
measured in pg_stat_activity; timeouts with real psycopg clients, in both
pooling modes and over the extended protocol.
"""

import subprocess
import threading
import time

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, PGB_AUTH, ServerConnSampler, helios_bin, wait_for

FORCED = ("h19_forced", "forced-pw-19")


@pytest.fixture(scope="module", autouse=True)
def forced_role(pg):
    pg.su.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'h19_forced') "
        "THEN CREATE ROLE h19_forced; END IF; END $$")
    pg.su.execute(f"ALTER ROLE h19_forced LOGIN PASSWORD '{FORCED[1]}'")
    pg.su.execute(f"GRANT CONNECT, CREATE ON DATABASE {APPDB} TO h19_forced")
    yield


def quiet(pg, *users):
    """No server connection of users is left from an earlier test (a proxy
    stopped at teardown closes them; PostgreSQL lists a backend until it
    has exited)."""
    for u in users or (ALICE[0],):
        assert pg.wait_server_conns(u, APPDB, 0) == 0, f"{u}: server connections left over"


def with_dbs(config, mode="session", databases=None, users=None, pool=None, **top):
    c = config(mode=mode, pool=pool, **top)
    if databases is not None:
        c["databases"] = databases
    if users is not None:
        c["users"] = users
    return c


def concurrent(n, fn):
    """Runs fn(i) in n threads at once; returns (results, errors)."""
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def run(i):
        try:
            start.wait(10)
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return results, errors


# --------------------------------------------------------------- databases

@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_alias_reaches_real_database_as_forced_user(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, databases=[
        {"name": "shop", "dbname": APPDB, "user": FORCED[0], "password": FORCED[1]}]))
    with p.connect(dbname="shop") as c:
        db, user = c.execute("SELECT current_database(), current_user").fetchone()
        assert (db, user) == (APPDB, FORCED[0])
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        row = pg.su.execute("SELECT datname, usename FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone()
        assert row == (APPDB, FORCED[0])


def test_forced_user_password_may_come_from_auth_users(pg, proxy, config):
    c = with_dbs(config, "transaction",
                 databases=[{"name": "shop", "dbname": APPDB, "user": FORCED[0]}])
    c["auth"]["users"] = c["auth"]["users"] + [{"name": FORCED[0], "password": FORCED[1]}]
    p = proxy(c)
    with p.connect(dbname="shop") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == FORCED[0]


def test_entry_auth_user_looks_up_unlisted_users(pg, proxy, config):
    # alice is not configured: only "shop" names an auth_user for auth_query
    c = with_dbs(config, databases=[{"name": "shop", "dbname": APPDB, "auth_user": PGB_AUTH[0]},
                                    {"name": "other", "dbname": APPDB}])
    c["auth"]["users"] = [{"name": PGB_AUTH[0], "password": PGB_AUTH[1]}]
    p = proxy(c)
    with p.connect(dbname="shop") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == ALICE[0]
    with pytest.raises(psycopg.OperationalError) as e:
        p.connect(dbname="other")
    assert "password authentication failed" in str(e.value)


def test_unknown_database_without_star_entry_gets_3D000(pg, proxy, config):
    p = proxy(with_dbs(config, databases=[{"name": "shop", "dbname": APPDB}]))
    with pytest.raises(psycopg.OperationalError) as e:
        p.connect(dbname="nosuchdb")
    assert "no such database: nosuchdb" in str(e.value)
    # the entry itself works
    with p.connect(dbname="shop") as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == APPDB


def test_star_entry_takes_every_other_name_and_no_entries_pass_through(pg, proxy, config):
    p = proxy(with_dbs(config, databases=[{"name": "shop", "dbname": APPDB},
                                          {"name": "*", "timezone": "Asia/Tokyo"}]))
    with p.connect(dbname="postgres") as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == "postgres"
        assert c.execute("SHOW timezone").fetchone()[0] == "Asia/Tokyo"
    q = proxy(with_dbs(config))
    with q.connect(dbname="postgres") as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == "postgres"


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_entry_startup_parameters_are_server_defaults_the_client_can_override(
        pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, databases=[
        {"name": "shop", "dbname": APPDB, "timezone": "Asia/Tokyo",
         "datestyle": "German, DMY", "client_encoding": "LATIN1"}]))
    with p.connect(dbname="shop", client_encoding="UTF8") as c:
        assert c.execute("SHOW timezone").fetchone()[0] == "Asia/Tokyo"
        assert c.execute("SHOW datestyle").fetchone()[0] == "German, DMY"
        # the client named its own encoding: that one wins
        assert c.execute("SHOW client_encoding").fetchone()[0] == "UTF8"


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_entry_nodes_limit_the_servers_it_uses(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, databases=[
        {"name": "ro", "dbname": APPDB, "nodes": ["replica"]},
        {"name": "rw", "dbname": APPDB, "nodes": ["primary"]}]))
    with p.connect(dbname="ro") as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    with p.connect(dbname="rw") as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False


# ------------------------------------------------------- sizes, modes, caps

def _sleepers(p, n, secs, dbname="shop", user=ALICE, sql=None):
    def one(i):
        u = user(i) if callable(user) else user
        with p.connect(user=u[0], password=u[1], dbname=dbname) as c:
            c.execute(sql or f"SELECT pg_sleep({secs})")
            return True
    return concurrent(n, one)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_database_pool_size_caps_server_connections(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, databases=[
        {"name": "shop", "dbname": APPDB, "pool_size": 2}], pool={"max_pool_size": 20}))
    quiet(pg)
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        res, errs = _sleepers(p, 5, 0.4)
    assert not errs, errs
    assert all(res)
    assert max(s.samples) == 2, s.samples


def test_entry_min_pool_size_keeps_servers_warm(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction", databases=[
        {"name": "shop", "dbname": APPDB, "min_pool_size": 3}]))
    with p.connect(dbname="shop") as c:
        c.execute("SELECT 1")
    # pool maintenance (once a second) opens the others from the login it saw
    assert wait_for(lambda: pg.server_conns(ALICE[0], APPDB) == 3, 6), \
        pg.server_conns(ALICE[0], APPDB)


def test_database_pool_mode_overrides_global_session_mode(pg, proxy, config):
    # pool_size 1: in session mode a second client would wait for the
    # first to leave; in the entry's transaction mode they take turns
    p = proxy(with_dbs(config, "session", databases=[
        {"name": "shop", "dbname": APPDB, "pool_size": 1, "pool_mode": "transaction"}],
        pool={"query_wait_timeout_secs": 2}))
    conns = [p.connect(dbname="shop") for _ in range(3)]
    try:
        for c in conns:
            assert c.execute("SELECT 1").fetchone()[0] == 1
        assert pg.server_conns(ALICE[0], APPDB) == 1
    finally:
        for c in conns:
            c.close()


def test_user_pool_mode_applies_and_database_mode_wins(pg, proxy, config):
    p = proxy(with_dbs(config, "session",
                       databases=[{"name": "shop", "dbname": APPDB, "pool_size": 1},
                                  {"name": "shop_s", "dbname": APPDB, "pool_size": 1,
                                   "pool_mode": "session"}],
                       users=[{"name": ALICE[0], "pool_mode": "transaction"}],
                       pool={"query_wait_timeout_secs": 1}))
    a, b = p.connect(dbname="shop"), p.connect(dbname="shop")
    try:  # the user's transaction mode: both run on one server
        assert a.execute("SELECT 1").fetchone()[0] == 1
        assert b.execute("SELECT 2").fetchone()[0] == 2
    finally:
        a.close()
        b.close()
    a = p.connect(dbname="shop_s")
    try:  # the database's session mode wins: a second client waits, then 53300
        assert a.execute("SELECT 1").fetchone()[0] == 1
        with pytest.raises(psycopg.OperationalError) as e:
            p.connect(dbname="shop_s").execute("SELECT 1")
        assert "query_wait_timeout" in str(e.value)
    finally:
        a.close()


def test_max_db_connections_caps_all_users_of_a_database(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction",
                       databases=[{"name": "shop", "dbname": APPDB, "max_db_connections": 2}]))
    users = [ALICE, MD5USER]
    quiet(pg, ALICE[0], MD5USER[0])
    with ServerConnSampler(pg, [ALICE[0], MD5USER[0]], APPDB, interval=0) as both, \
            ServerConnSampler(pg, ALICE[0], APPDB) as sa, \
            ServerConnSampler(pg, MD5USER[0], APPDB) as sm:
        res, errs = _sleepers(p, 6, 0.4, user=lambda i: users[i % 2])
    assert not errs, errs
    assert all(res)
    # slots move between the two users' pools (a server closes, its
    # backend exits, then the other pool connects): never 3 at once
    assert len(both.samples) > 100
    assert max(both.samples) == 2, sorted(both.samples)[-5:]
    assert max(sa.samples) >= 1 and max(sm.samples) >= 1


def test_max_db_connections_closes_an_idle_server_of_another_user(pg, proxy, config):
    # alice's idle server holds the only slot: md5user's client must not
    # wait for alice's idle timeout
    p = proxy(with_dbs(config, "transaction",
                       databases=[{"name": "shop", "dbname": APPDB, "max_db_connections": 1}],
                       pool={"query_wait_timeout_secs": 5}))
    with p.connect(dbname="shop") as a:
        a.execute("SELECT 1")
        assert pg.server_conns(ALICE[0], APPDB) == 1
        t0 = time.monotonic()
        with p.connect(user=MD5USER[0], password=MD5USER[1], dbname="shop") as m:
            assert m.execute("SELECT current_user").fetchone()[0] == MD5USER[0]
        assert time.monotonic() - t0 < 3
        assert pg.server_conns(ALICE[0], APPDB) == 0


def test_max_user_connections_caps_a_user_over_databases(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction",
                       databases=[{"name": "shop", "dbname": APPDB},
                                  {"name": "shop2", "dbname": APPDB}],
                       users=[{"name": ALICE[0], "max_user_connections": 2}]))
    quiet(pg)
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        res, errs = concurrent(6, lambda i: _one_sleep(p, "shop" if i % 2 else "shop2", 0.4))
    assert not errs, errs
    assert all(res)
    assert max(s.samples) == 2, s.samples


def test_global_max_user_connections_applies_without_entries(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction", pool={"max_user_connections": 1}))
    quiet(pg)
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        res, errs = concurrent(4, lambda i: _one_sleep(p, APPDB, 0.3))
    assert not errs, errs
    assert max(s.samples) == 1, s.samples


def test_wait_held_by_a_shared_cap_names_it(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction", pool={"query_wait_timeout_secs": 1},
                       databases=[{"name": "shop", "dbname": APPDB},
                                  {"name": "shop2", "dbname": APPDB}],
                       users=[{"name": ALICE[0], "max_user_connections": 1}]))
    with p.connect(dbname="shop", autocommit=False) as a, p.connect(dbname="shop2") as b:
        a.execute("SELECT 1")  # holds the user's only server in its transaction
        with pytest.raises(psycopg.Error) as e:
            b.execute("SELECT 1")
        assert e.value.sqlstate == "53300", e.value
        assert "max_user_connections 1 shared with other pools" in str(e.value), e.value
        a.rollback()


def _one_sleep(p, dbname, secs):
    with p.connect(dbname=dbname) as c:
        c.execute(f"SELECT pg_sleep({secs})")
        return True


def test_reserve_pool_opens_beyond_pool_size_after_the_timeout(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction",
                       databases=[{"name": "shop", "dbname": APPDB, "pool_size": 1,
                                   "reserve_pool": 1}],
                       pool={"reserve_pool_timeout_ms": 300}))
    quiet(pg)
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        t0 = time.monotonic()
        res, errs = concurrent(2, lambda i: _one_sleep(p, "shop", 2))
        took = time.monotonic() - t0
    assert not errs, errs
    assert max(s.samples) == 2, s.samples  # the reserve connection
    assert took < 3.5  # not one after the other (4 s)
    # without a reserve they run one after the other
    q = proxy(with_dbs(config, "transaction",
                       databases=[{"name": "shop", "dbname": APPDB, "pool_size": 1}]))
    t0 = time.monotonic()
    res, errs = concurrent(2, lambda i: _one_sleep(q, "shop", 1))
    assert not errs, errs
    assert time.monotonic() - t0 >= 1.9


def test_pool_size_change_applies_on_reload(pg, proxy, config):
    cfg = with_dbs(config, "transaction", databases=[
        {"name": "shop", "dbname": APPDB, "pool_size": 1}])
    p = proxy(cfg)
    quiet(pg)
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        concurrent(3, lambda i: _one_sleep(p, "shop", 0.3))
    assert max(s.samples) == 1
    cfg["databases"][0]["pool_size"] = 3
    p.rewrite_config(cfg)
    mark = len(p.log())
    p.sighup()
    assert p.wait_log(r"configuration generation \d+ applied", start=mark, timeout=10), \
        p.log_tail()
    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        res, errs = concurrent(3, lambda i: _one_sleep(p, "shop", 0.5))
    assert not errs, errs
    assert max(s.samples) == 3, s.samples


# ----------------------------------------------------------------- timeouts

def _backend_gone(pg, pid, timeout=5):
    return wait_for(lambda: not pg.su.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(), timeout)


def _sleeping_backends(pg):
    return pg.su.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
        "AND query LIKE 'SELECT pg_sleep%%' AND state = 'active'", (ALICE[0],)).fetchone()[0]


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_query_timeout_psql_simple_protocol_gets_57014(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, pool={"query_timeout_secs": 1}))
    t0 = time.monotonic()
    r = subprocess.run([str(pg.bin / "psql"), "-X", "-A", "-t", "-v", "VERBOSITY=verbose",
                        "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0], "-d", APPDB,
                        "-c", "SELECT pg_sleep(10)"],
                       env=pg.env(password=ALICE[1]), capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    assert r.returncode != 0
    assert "57014" in r.stderr and "query timeout" in r.stderr, r.stderr
    assert 0.9 < took < 4, took
    # the backend stopped sleeping (the cancel), it did not run on for 10 s
    assert wait_for(lambda: _sleeping_backends(pg) == 0, 3)
    assert p.wait_log(r"query_timeout_secs = 1: cancelled")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_query_timeout_extended_protocol_gets_57014(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, pool={"query_timeout_secs": 1}))
    c = p.connect()
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0] if mode == "session" else None
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT pg_sleep(%s)", (10,), prepare=True)  # Parse/Bind/Execute/Sync
    took = time.monotonic() - t0
    assert 0.9 < took < 4, took
    # FATAL then close: libpq keeps the message, not the SQLSTATE (psql
    # above shows 57014)
    assert "query timeout" in str(e.value), e.value
    assert wait_for(lambda: _sleeping_backends(pg) == 0, 3)
    if pid:
        assert _backend_gone(pg, pid)
    c.close()
    # a query under the limit is untouched, in a session that runs long
    with p.connect() as c2:
        for _ in range(3):
            assert c2.execute("SELECT pg_sleep(0.5), 7", prepare=True).fetchone()[1] == 7


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_idle_transaction_timeout_closes_client_and_rolls_back(pg, proxy, config, mode):
    pg.su.execute("DROP TABLE IF EXISTS h19_itt")
    with pg.superuser(dbname=APPDB) as su:
        su.execute("CREATE TABLE h19_itt (x int)")
        su.execute("GRANT ALL ON h19_itt TO alice")
    p = proxy(with_dbs(config, mode, pool={"idle_transaction_timeout_secs": 1}))
    c = p.connect(autocommit=False)
    c.execute("INSERT INTO h19_itt VALUES (1)")
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    time.sleep(2.5)
    with pytest.raises(psycopg.OperationalError) as e:
        c.execute("SELECT 1")
    assert "idle transaction timeout" in str(e.value), e.value
    c.close()
    assert _backend_gone(pg, pid)
    with pg.superuser(dbname=APPDB) as su:
        assert su.execute("SELECT count(*) FROM h19_itt").fetchone()[0] == 0
        su.execute("DROP TABLE h19_itt")
    assert p.wait_log(r"idle_transaction_timeout_secs = 1: closed")
    # a transaction that keeps working is not idle
    with p.connect(autocommit=False) as c2:
        for _ in range(4):
            c2.execute("SELECT pg_sleep(0.5)")
        c2.commit()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_client_idle_timeout_closes_idle_clients_only(pg, proxy, config, mode):
    p = proxy(with_dbs(config, mode, client_idle_timeout_secs=2))
    idle = p.connect()
    busy = p.connect()
    for _ in range(8):  # 4 s of a query every half second
        busy.execute("SELECT 1")
        time.sleep(0.5)
    assert busy.execute("SELECT 2").fetchone()[0] == 2
    with pytest.raises(psycopg.OperationalError) as e:
        idle.execute("SELECT 1")
    assert "client_idle_timeout" in str(e.value), e.value
    idle.close()
    busy.close()
    assert p.wait_log(r"client_idle_timeout_secs = 2: closed")


def test_client_waiting_for_a_server_is_not_idle(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction", client_idle_timeout_secs=1,
                       databases=[{"name": "shop", "dbname": APPDB, "pool_size": 1}]))
    with p.connect(dbname="shop") as a, p.connect(dbname="shop") as b:
        t = threading.Thread(target=lambda: a.execute("SELECT pg_sleep(3)"))
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert b.execute("SELECT 5").fetchone()[0] == 5  # waited ~2.5 s for the server
        assert time.monotonic() - t0 > 1.5
        t.join(10)


def test_timeouts_off_by_default_keep_an_idle_transaction(pg, proxy, config):
    p = proxy(with_dbs(config, "transaction"))
    with p.connect(autocommit=False) as c:
        c.execute("SELECT 1")
        time.sleep(2)
        assert c.execute("SELECT 2").fetchone()[0] == 2
        c.commit()


# ---------------------------------------------------------------- hints

def test_pgbouncer_key_names_in_the_toml_get_the_helios_key(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('listen_port = 6432\n[[nodes]]\nhost = "127.0.0.1"\n')
    r = subprocess.run([str(helios_bin() / "heliosproxy"), "--check-config", str(f)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert f"{f}:1: unknown key 'listen_port' (PgBouncer's listen_port is 'listen_address'" in out


# ------------------------------------------------------------ result cache

def test_result_cache_serves_an_alias_with_a_forced_user(pg, proxy, config):
    # the cache reads the database's catalog with an internal request: it
    # must use the entry's pool (forced user), which knows how to log in
    import json
    from conftest import helioctl
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS h19_cached")
        su.execute("CREATE TABLE h19_cached (id int PRIMARY KEY, v text)")
        su.execute("INSERT INTO h19_cached VALUES (1, 'one'), (2, 'two')")
        su.execute(f"GRANT SELECT ON h19_cached TO {FORCED[0]}")
    c = with_dbs(config, "transaction", databases=[
        {"name": "shop", "dbname": APPDB, "user": FORCED[0], "password": FORCED[1]}])
    c["cache"] = {"enabled": True}
    p = proxy(c)
    try:
        with p.connect(dbname="shop") as conn:
            cur = psycopg.ClientCursor(conn)
            cur.execute("SELECT 1")  # the first statement: the catalog is read
            time.sleep(0.5)
            for _ in range(10):
                cur.execute("SELECT v FROM h19_cached WHERE id = 2")
                assert cur.fetchall() == [("two",)]
        doc = json.loads(helioctl(p, "--json", "cache", "stats").stdout)
        st = [dp["report"] for dp in doc["dataplanes"] if dp.get("report")][0]["cache"]
        assert st["hits"] >= 8, st
        assert "could not start reading the catalog" not in p.log()
    finally:
        with pg.superuser(dbname=APPDB) as su:
            su.execute("DROP TABLE h19_cached")


# ------------------------------------------------------------------ pgbench

@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_pgbench_two_users_under_max_db_connections_fail_nothing(pg, proxy, config, tmp_path,
                                                                 mode):
    """10 pgbench clients of each of two users through one alias capped at 4
    server connections: every transaction succeeds, and PostgreSQL never
    sees more than 4 backends of the two users."""
    import re
    cap = 4 if mode == "transaction" else 20  # session: one server per client
    p = proxy(with_dbs(config, mode, databases=[
        {"name": "bench", "dbname": APPDB, "max_db_connections": cap, "pool_mode": mode}],
        pool={"query_wait_timeout_secs": 60}))
    quiet(pg, ALICE[0], MD5USER[0])
    script = tmp_path / "q.sql"
    script.write_text("BEGIN;\nSELECT pg_sleep(0.005);\nSELECT count(*) FROM pg_class;\nEND;\n")

    def bench(user):
        return subprocess.Popen(
            [str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(p.port), "-U", user[0],
             "-f", str(script), "-c", "10", "-j", "2", "-T", "5", "-M", "extended", "bench"],
            env=pg.env(password=user[1]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)

    with ServerConnSampler(pg, [ALICE[0], MD5USER[0]], APPDB, interval=0) as s:
        runs = [bench(ALICE), bench(MD5USER)]
        outs = [r.communicate(timeout=60)[0] for r in runs]
    for out in outs:
        assert re.search(r"(?m)^number of failed transactions: 0\b", out), out
        m = re.search(r"(?m)^number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 50, out
    assert max(s.samples) <= cap, sorted(s.samples)[-5:]
    if mode == "transaction":
        assert max(s.samples) == cap  # the load filled it
