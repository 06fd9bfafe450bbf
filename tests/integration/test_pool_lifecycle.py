"""Server connection life cycle in the pool: warm-up (min_idle), idle and
lifetime expiry, the reset query on release, and FIFO order of waiters."""

import threading
import time

import psycopg

from conftest import ALICE, APPDB


def wait_for(pred, timeout=10.0, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def test_min_idle_keeps_connections_warm(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 5, "min_idle": 3}))
    assert pg.wait_server_conns(ALICE[0], APPDB, 0) == 0
    # The pool learns the startup parameters from the first client, then
    # warms up to min_idle without any client connected.
    with p.connect() as conn:
        conn.execute("SELECT 1")
    n = wait_for(lambda: pg.server_conns(ALICE[0], APPDB) >= 3, timeout=10)
    assert pg.server_conns(ALICE[0], APPDB) == 3, f"expected 3 warm connections, saw {n}"


def test_idle_timeout_closes_idle_servers(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 5, "idle_timeout_secs": 1}))
    assert pg.wait_server_conns(ALICE[0], APPDB, 0) == 0
    with p.connect() as conn:
        conn.execute("SELECT 1")
    assert pg.server_conns(ALICE[0], APPDB) == 1, "the released server should be pooled"
    assert pg.wait_server_conns(ALICE[0], APPDB, 0, timeout=8) == 0, \
        "an idle server outlived idle_timeout_secs = 1"


def test_server_lifetime_retires_old_servers(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 5, "server_lifetime_secs": 1, "idle_timeout_secs": 0}))
    with p.connect() as conn:
        first = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        time.sleep(1.5)
    # released after its lifetime: closed, so the next client gets a new one
    with p.connect() as conn:
        second = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert first != second, "a server older than server_lifetime_secs was reused"


def test_reset_query_cleans_session_before_reuse(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 1}))
    with p.connect() as conn:
        conn.autocommit = True
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("CREATE TEMP TABLE leftover (x int)")
        conn.execute("SET work_mem = '7MB'")
        conn.execute("PREPARE leftover_stmt AS SELECT 1")
    with p.connect() as conn:
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, \
            "the pooled server was not reused"
        assert conn.execute("SELECT to_regclass('pg_temp.leftover')").fetchone()[0] is None
        assert conn.execute("SHOW work_mem").fetchone()[0] != "7MB"
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0


def test_waiting_clients_are_served_in_arrival_order(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 1, "query_wait_timeout_secs": 30}))
    order, lock = [], threading.Lock()

    def client(name):
        with psycopg.connect(p.dsn(ALICE[0], ALICE[1], APPDB, connect_timeout=30)) as c:
            c.execute("SELECT 1")
            with lock:
                order.append(name)

    with p.connect() as holder:
        holder.execute("SELECT 1")
        threads = []
        for name in ("first", "second", "third"):
            t = threading.Thread(target=client, args=(name,))
            t.start()
            threads.append(t)
            time.sleep(0.3)  # arrive in a known order
    for t in threads:
        t.join(30)
    assert order == ["first", "second", "third"]
