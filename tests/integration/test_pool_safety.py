"""Pool safety: dead pooled servers are never handed out, a terminated
backend is not a node failure, any successful use closes the circuit
breaker, and every wait for a server is bounded."""

import socket
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, free_port, wait_for


def metrics(p):
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def breaker_closed(p, node="primary"):
    return f'helios_node_breaker_state{{node="{node}",state="closed"}} 1' in metrics(p)


def alice_backends(pg, state=None):
    q = ("SELECT pid FROM pg_stat_activity WHERE usename = 'alice' AND datname = %s "
         "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    args = [APPDB]
    if state:
        q += " AND state = %s"
        args.append(state)
    return [r[0] for r in pg.su.execute(q, args).fetchall()]


def terminate(pg, pids):
    for pid in pids:
        pg.su.execute("SELECT pg_terminate_backend(%s)", (pid,))
    gone = wait_for(lambda: not set(pids) & set(alice_backends(pg)), timeout=15)
    assert gone, "terminated backends did not go away"


def fill_pool(p, n):
    """n clients busy at once, so the pool holds n idle servers afterwards."""
    conns = [p.connect() for _ in range(n)]
    try:
        threads = [threading.Thread(target=c.execute, args=("SELECT pg_sleep(0.5)",))
                   for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for c in conns:
            c.close()


# ---------------------------------------------------------------------------
# dead idle servers


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_terminated_idle_servers_are_never_handed_out(pg, proxy, config, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 10, "idle_timeout_secs": 0}))
    fill_pool(p, 5)
    idle = wait_for(lambda: len(alice_backends(pg, "idle")) >= 5 and alice_backends(pg, "idle"))
    assert idle and len(idle) >= 5, idle
    terminate(pg, idle)
    # six new clients, one after the other: each is served, none sees the
    # leftover 57P01 of a terminated server
    for i in range(6):
        with p.connect() as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1, i
    # concurrently too
    fill_pool(p, 5)
    terminate(pg, alice_backends(pg, "idle"))
    errors = []

    def client():
        try:
            with p.connect() as c:
                c.execute("SELECT 1")
        except psycopg.Error as e:
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert breaker_closed(p), "terminated idle servers counted against the node"
    assert "circuit breaker for node primary: open" not in p.log()


def test_terminated_busy_and_idle_servers_do_not_open_the_breaker(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 20, "idle_timeout_secs": 0},
                     circuit_breaker={"failure_threshold": 3, "recovery_timeout_secs": 60}))
    fill_pool(p, 5)  # idle servers
    busy = [p.connect() for _ in range(10)]
    failures = []

    def sleeper(c):
        try:
            c.execute("SELECT pg_sleep(60)")
        except psycopg.Error as e:
            failures.append(e)

    threads = [threading.Thread(target=sleeper, args=(c,)) for c in busy]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(alice_backends(pg, "active")) >= 10, timeout=20)
    terminate(pg, alice_backends(pg))
    for t in threads:
        t.join(30)
    assert len(failures) == 10, failures  # the busy clients lose their statement
    for c in busy:
        c.close()
    for i in range(10):
        with p.connect() as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1, i
    assert breaker_closed(p), "terminated backends counted as node failures"
    assert "circuit breaker for node primary: open" not in p.log()


# ---------------------------------------------------------------------------
# bounded waits


def bounded(fn, limit):
    """Runs fn in a thread; fails if it has not returned after limit seconds."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # reported to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"still waiting after {limit} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_pinned_client_listen_with_pool_of_one_does_not_hang(pg, proxy, config):
    p = proxy(config(mode="transaction",
                     pool={"max_pool_size": 1, "query_wait_timeout_secs": 2}))
    with p.connect() as c:
        c.execute("DECLARE pin_cur CURSOR WITH HOLD FOR SELECT 1")  # pinned
        bounded(lambda: c.execute("LISTEN pinned_chan"), 30)
        with p.connect() as other:
            bounded(lambda: other.execute("NOTIFY pinned_chan, 'hello'"), 30)
        c.execute("SELECT 1")
        n = [x.payload for x in c.notifies(timeout=5, stop_after=1)]
        assert n == ["hello"], n


def test_server_left_with_cursor_prepare_and_listen_serves_the_next_client(pg, proxy, config):
    pg.su.execute("DROP ROLE IF EXISTS pool_safety_tmp")
    pg.su.execute("CREATE ROLE pool_safety_tmp")
    pg.su.execute("GRANT pool_safety_tmp TO alice")
    p = proxy(config(mode="transaction",
                     pool={"max_pool_size": 20, "query_wait_timeout_secs": 2}))
    with p.connect() as a:
        a.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")
        a.execute("PREPARE left_stmt AS SELECT 1")
        a.execute("LISTEN left_chan")
    with p.connect() as b:
        def statements():
            b.execute("SET ROLE pool_safety_tmp")
            b.execute("RESET SESSION AUTHORIZATION")
            b.execute("SELECT 1")
            return b.execute("SELECT current_user").fetchone()[0]
        assert bounded(statements, 30) == "alice"
    pg.su.execute("REVOKE pool_safety_tmp FROM alice")
    with p.connect() as b:
        bounded(lambda: b.execute("SELECT 1"), 30)
    pg.su.execute("DROP ROLE pool_safety_tmp")
