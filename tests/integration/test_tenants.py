"""Rate limits (token buckets per user, global, database, tenant; throttle and
reject) and tenants (mapping, database isolation, connection caps, their own
pools, helioctl tenants)."""

import json
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import APPDB, MD5USER, helioctl, RATE_LOW as LOW, run_for, tenants_of


def test_throttle_holds_a_user_to_its_rate(proxy, config):
    cfg = config(mode="transaction")
    cfg["rate_limit"] = {"queries_per_second": 200, "burst_size": 10, "mode": "throttle"}
    p = proxy(cfg)
    with p.connect() as c:
        run_for(c, 0.2)  # the burst goes
        ok, refused = run_for(c, 5.0)
    assert refused == 0
    rate = ok / 5.0
    assert 200 * LOW <= rate <= 220, rate


def test_reject_answers_53400_naming_the_limit_and_the_connection_goes_on(proxy, config):
    cfg = config(mode="transaction")
    cfg["rate_limit"] = {"queries_per_second": 200, "burst_size": 10, "mode": "reject"}
    p = proxy(cfg)
    with p.connect() as c:
        run_for(c, 0.2)
        ok, refused = run_for(c, 5.0)
        assert refused > ok  # a tight loop asks for far more than 200/s
        assert 180 <= ok / 5.0 <= 220, ok / 5.0
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
            for _ in range(100):
                psycopg.ClientCursor(c).execute("SELECT 1")
        assert "rate_limit.queries_per_second per user" in str(e.value)
        assert 'bucket "user:alice"' in str(e.value)
        time.sleep(0.1)
        assert c.execute("SELECT 41 + 1").fetchone() == (42,)  # extended protocol, still usable
        # an extended-protocol batch is refused whole, and the connection goes on
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            for i in range(1000):
                c.execute("SELECT %s::int", (i,))
        time.sleep(0.1)
        assert c.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)


def test_session_mode_says_per_query_limits_do_not_apply(proxy, config):
    cfg = config(mode="session")
    cfg["rate_limit"] = {"queries_per_second": 100}
    p = proxy(cfg)
    p.wait_log("apply only to transaction and statement pooling")


def test_users_have_their_own_buckets_unless_per_user_is_off(proxy, config):
    for per_user in (True, False):
        cfg = config(mode="transaction")
        cfg["rate_limit"] = {"queries_per_second": 200, "burst_size": 5, "per_user": per_user}
        p = proxy(cfg)
        with p.connect() as a, p.connect(user=MD5USER[0], password=MD5USER[1]) as m:
            res = {}

            def go(name, conn):
                res[name] = run_for(conn, 4.0)[0] / 4.0
            ts = [threading.Thread(target=go, args=("a", a)), threading.Thread(target=go, args=("m", m))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        # per user: each gets up to 200/s (together more than one bucket
        # gives); one global bucket: they share 200/s, neither starved
        if per_user:
            assert all(200 * LOW <= r <= 220 for r in res.values()), (per_user, res)
        else:
            total = res["a"] + res["m"]
            assert 200 * LOW <= total <= 220, (per_user, res)
            assert min(res.values()) > 0.25 * max(res.values()), (per_user, res)
        p.stop()


def test_tenant_rate_limit_and_metrics(proxy, config):
    cfg = config(mode="transaction")
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "rate_limit": 100}]
    cfg["rate_limit"] = {"mode": "reject"}
    p = proxy(cfg)
    with p.connect() as c:
        run_for(c, 0.3)
        ok, refused = run_for(c, 3.0)
    assert 90 <= ok / 3.0 <= 110 and refused > 0, (ok, refused)
    t = tenants_of(p)["ta"]
    assert t.get("rejected", 0) >= refused and t["rate_limit"] == 100, t
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'helios_rate_limit_rejected_total{dataplane=' in text
    assert 'bucket="tenant:ta"' in text


def test_a_tenant_cannot_open_another_tenant_s_database(proxy, config, pg):
    su = pg.su
    if not su.execute("SELECT 1 FROM pg_database WHERE datname = 'tenantb_db'").fetchone():
        su.execute("CREATE DATABASE tenantb_db OWNER alice")
    cfg = config(mode="transaction")
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "databases": [APPDB]},
                      {"id": "tb", "users": [MD5USER[0]], "databases": ["tenantb_db"]}]
    p = proxy(cfg)
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError) as e:
        p.connect(dbname="tenantb_db")
    assert 'tenant "ta" may not use database "tenantb_db"' in str(e.value)
    assert tenants_of(p)["ta"]["refused_logins"] >= 1
    # by database: the database names the tenant; require refuses the rest
    cfg["tenancy"] = {"map_by": "database", "require": True}
    cfg["tenants"] = [{"id": "ta", "databases": [APPDB]}]
    p.stop()
    p2 = proxy(cfg)
    with p2.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError) as e:
        p2.connect(dbname="tenantb_db")
    assert "belongs to no tenant" in str(e.value)


def test_tenant_by_startup_setting_caps_connections_and_has_its_own_pools(proxy, config, pg):
    cfg = config(mode="transaction", admin_users=MD5USER[0])
    cfg["tenancy"] = {"map_by": "startup"}
    cfg["tenants"] = [{"id": "ta", "max_connections": 3}, {"id": "tb"}]
    p = proxy(cfg)
    opts = {"options": "-c helios.tenant=ta"}
    held = [p.connect(**opts) for _ in range(3)]
    try:
        for c in held:
            c.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError) as e:
            p.connect(**opts)
        assert 'too many connections for tenant "ta" (tenants.max_connections = 3' in str(e.value)
        with p.connect(options="-c helios.tenant=tb") as other:
            assert other.execute("SELECT 2").fetchone() == (2,)
        t = tenants_of(p)
        assert t["ta"]["clients"] == 3 and t["ta"]["max_connections"] == 3, t
        # separate pools, visible in SHOW POOLS: one row per (database,
        # user) as PgBouncer tooling keys them (issue 19), listing its tenants
        with psycopg.connect(p.dsn(MD5USER[0], MD5USER[1], "heliosproxy"), autocommit=True) as adm:
            rows = adm.execute("SHOW POOLS").fetchall()
            cols = [d.name for d in adm.execute("SHOW POOLS").description]
        tcol = cols.index("tenant")
        assert len({(r[0], r[1]) for r in rows}) == len(rows), rows
        assert {"ta", "tb"} <= {t for r in rows for t in r[tcol].split(",")}, rows
    finally:
        for c in held:
            c.close()
    # a slot frees when a client leaves
    time.sleep(0.2)
    with p.connect(**opts) as c:
        assert c.execute("SELECT 3").fetchone() == (3,)


def test_tenant_server_connections_are_capped(proxy, config, pg):
    cfg = config(mode="transaction")
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "max_connections": 2}]
    p = proxy(cfg)
    # two clients at once in long transactions: the cap is 2 client conns, so
    # both hold servers; a third client is refused at login
    a, b = p.connect(autocommit=False), p.connect(autocommit=False)
    try:
        a.execute("SELECT pg_sleep(0.3)")
        b.execute("SELECT pg_sleep(0.3)")
        assert pg.server_conns("alice", APPDB) <= 2
        t = tenants_of(p)["ta"]
        assert t["servers"] <= 2, t
    finally:
        a.close()
        b.close()


def test_quotas_hold_across_two_data_planes_of_one_control_plane(proxy, config, tmp_path):
    """Two heliosproxy processes attached to one helios-cp: the tenant's
    cluster-wide rate and connection cap hold for the sum (±10 %)."""
    from conftest import free_port
    from test_control_plane import ControlPlane
    url = f"ipc://{tmp_path}/cp.sock"
    cfg = config(mode="transaction")
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "rate_limit": 200, "max_connections": 6}]
    cfg["rate_limit"] = {"mode": "throttle", "max_wait_ms": 5000}
    cfg = dict(cfg, control_address=url, control_admin_address=f"127.0.0.1:{free_port()}")
    addrs = [(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for _ in range(2)]
    from conftest import Proxy, io_backend
    tmp = Proxy(tmp_path, "cp-config", {"listen_address": addrs[0][0], "admin_address": addrs[0][1],
                                        "workers": 2, "io_backend": io_backend(),
                                        "shutdown_timeout_secs": 5})
    tmp.write_config(cfg)
    cp = ControlPlane(tmp_path, tmp.config_path, url, None).start()
    try:
        dps = [proxy(cfg, listen_address=l, admin_address=a) for l, a in addrs]
        # connections: 6 for the tenant over both data planes
        conns = []
        refused = 0
        for i in range(10):
            try:
                conns.append(dps[i % 2].connect())
            except psycopg.OperationalError as e:
                assert "too many connections for tenant" in str(e)
                refused += 1
            time.sleep(0.3)  # let the shares follow
        assert len(conns) <= 6 * 1.1 and refused >= 3, (len(conns), refused)
        for c in conns[2:]:
            c.close()
        # rate: both data planes hammer; the sum stays near 200/s
        counts = [0, 0]

        def hammer(k, conn, secs):
            end = time.monotonic() + secs
            cur = psycopg.ClientCursor(conn)
            while time.monotonic() < end:
                cur.execute("SELECT 1")
                counts[k] += 1
        warm = [threading.Thread(target=hammer, args=(k, conns[k], 3.0)) for k in range(2)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        counts[:] = [0, 0]
        run = [threading.Thread(target=hammer, args=(k, conns[k], 5.0)) for k in range(2)]
        for t in run:
            t.start()
        for t in run:
            t.join()
        total = sum(counts) / 5.0
        assert 200 * LOW <= total <= 220, (counts, total)
        assert min(counts) > 0.25 * max(counts), counts  # shared, not one starving the other
        for c in conns[:2]:
            c.close()
    finally:
        cp.stop()
