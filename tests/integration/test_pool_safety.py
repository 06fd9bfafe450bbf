"""Pool safety: dead pooled servers are never handed out, a terminated
backend is not a node failure, any successful use closes the circuit
breaker, and every wait for a server is bounded."""

import socket
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, helios_bin, run, wait_for


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


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_terminated_busy_and_idle_servers_do_not_open_the_breaker(pg, proxy, config, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 20, "idle_timeout_secs": 0},
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

    def body():
        try:
            box["value"] = fn()
        except BaseException as e:  # reported to the caller
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
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
        got = []
        c.add_notify_handler(got.append)
        c.execute("DECLARE pin_cur CURSOR WITH HOLD FOR SELECT 1")  # pinned
        bounded(lambda: c.execute("LISTEN pinned_chan"), 30)
        # the pool's one server is this client's: notify from outside
        with psycopg.connect(pg.dsn(ALICE[0], ALICE[1]), autocommit=True) as other:
            other.execute("NOTIFY pinned_chan, 'hello'")
        # a pinned client keeps its server: the notification still arrives
        assert wait_for(lambda: c.execute("SELECT 1") and got, timeout=10), \
            "no notification for a pinned client"
        assert [n.payload for n in got] == ["hello"]
        assert c.execute("FETCH pin_cur").fetchone() == (1,)


def test_server_left_with_cursor_prepare_and_listen_serves_the_next_client(pg, proxy, config):
    # the regression run's sequence: a client leaves a server with a WITH
    # HOLD cursor, a PREPARE and a LISTEN; the next one's statements, down
    # to DROP ROLE after RESET SESSION AUTHORIZATION, are all answered
    pg.su.execute("DROP ROLE IF EXISTS pool_safety_tmp")
    pg.su.execute("CREATE ROLE pool_safety_tmp")
    pg.su.execute("GRANT pool_safety_tmp TO alice")
    pg.su.execute("ALTER ROLE alice CREATEROLE")
    try:
        p = proxy(config(mode="transaction",
                         pool={"max_pool_size": 20, "query_wait_timeout_secs": 2}))
        with p.connect() as a:
            def first():
                a.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")
                a.execute("PREPARE left_stmt AS SELECT 1")
                a.execute("LISTEN left_chan")
            bounded(first, 30)
        with p.connect() as b:
            def statements():
                b.execute("SET ROLE pool_safety_tmp")
                b.execute("RESET SESSION AUTHORIZATION")
                b.execute("CREATE ROLE pool_safety_tmp2")
                b.execute("RESET SESSION AUTHORIZATION")
                b.execute("DROP ROLE pool_safety_tmp2")
                return b.execute("SELECT current_user").fetchone()[0]
            assert bounded(statements, 30) == "alice"
        with p.connect() as b:
            assert bounded(lambda: b.execute("SELECT 1").fetchone()[0], 30) == 1
    finally:
        pg.su.execute("ALTER ROLE alice NOCREATEROLE")
        pg.su.execute("DROP ROLE IF EXISTS pool_safety_tmp2")
        pg.su.execute("DROP ROLE IF EXISTS pool_safety_tmp")


def test_listen_whose_hub_cannot_log_in_gets_an_error(pg, proxy, config):
    # md5user may hold one backend: its pooled server; the LISTEN hub's own
    # login is refused (53300), so the LISTEN can never be confirmed
    pg.su.execute("ALTER ROLE md5user CONNECTION LIMIT 1")
    try:
        p = proxy(config(mode="transaction",
                         pool={"max_pool_size": 5, "query_wait_timeout_secs": 2}))
        with p.connect(user=MD5USER[0], password=MD5USER[1]) as c:
            c.execute("SELECT 1")
            t0 = time.monotonic()
            with pytest.raises(psycopg.Error) as e:
                bounded(lambda: c.execute("LISTEN no_hub_chan"), 30)
            # the hub's login failed: told at once, not after the timeout
            assert e.value.sqlstate == "08006", e.value
            assert "LISTEN connection" in str(e.value), e.value
            assert time.monotonic() - t0 < 20
            # the connection stays usable
            assert c.execute("SELECT 2").fetchone()[0] == 2
    finally:
        pg.su.execute("ALTER ROLE md5user CONNECTION LIMIT -1")


def test_pool_wait_in_transaction_mode_ends_with_53300_naming_the_pool(pg, proxy, config):
    p = proxy(config(mode="transaction",
                     pool={"max_pool_size": 1, "query_wait_timeout_secs": 2}))
    with p.connect() as holder, p.connect() as waiter:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            bounded(lambda: waiter.execute("SELECT 1"), 30)
        assert e.value.sqlstate == "53300", e.value
        assert "appdb/alice" in str(e.value) and "query_wait_timeout" in str(e.value)
        assert time.monotonic() - t0 < 20
        holder.execute("COMMIT")
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def helioctl(p, *args):
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), *args], timeout=30,
            check=False)
    assert r.returncode == 0, f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def test_client_held_for_a_drained_primary_gets_53300_after_the_wait_timeout(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"query_wait_timeout_secs": 2}))
    with p.connect() as c:
        c.execute("SELECT 1")  # logged in; the pool knows the login parameters
        helioctl(p, "drain", "primary")
        try:
            t0 = time.monotonic()
            with pytest.raises(psycopg.Error) as e:
                bounded(lambda: c.execute("SELECT 1"), 30)
            assert e.value.sqlstate == "53300", e.value
            assert "drained" in str(e.value), e.value
            assert time.monotonic() - t0 < 20
        finally:
            helioctl(p, "undrain", "primary")
        assert c.execute("SELECT 2").fetchone()[0] == 2  # the connection stays


# ---------------------------------------------------------------------------
# the breaker closes on any success


class Forwarder:
    """A TCP relay in front of the primary that can stop accepting (new
    connections refused) while the connections it already has keep going."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.pairs = []
        self.swallow = False  # accept new connections but never answer
        self.swallowed = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            if self.swallow:
                self.swallowed.append(a)
                continue
            b = socket.create_connection(("127.0.0.1", self.target))
            self.pairs.append((a, b))
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def refuse(self):
        # shutdown wakes the accepting thread and stops listening at once
        # (a plain close waits for the blocked accept to return)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def close(self):
        self.refuse()
        for a in self.swallowed:
            a.close()
        for a, b in self.pairs:
            a.close()
            b.close()


def test_breaker_half_open_closes_when_a_pooled_server_answers(pg, proxy, config):
    fwd = Forwarder(pg.port)
    try:
        cfg = config(mode="transaction", pool={"max_pool_size": 10, "idle_timeout_secs": 0},
                     circuit_breaker={"failure_threshold": 2, "recovery_timeout_secs": 1},
                     health_check_interval_secs=600,
                     routing={"lag_check_interval_secs": 600})
        cfg["nodes"][0]["port"] = fwd.port
        p = proxy(cfg)
        fill_pool(p, 2)  # alice's pool keeps two idle servers through the relay
        fwd.refuse()  # the node now refuses new connections
        for _ in range(3):  # md5user's pool must connect: refused, counted
            with pytest.raises(psycopg.OperationalError):
                with p.connect(user=MD5USER[0], password=MD5USER[1]) as c:
                    c.execute("SELECT 1")
        assert wait_for(lambda: 'helios_node_breaker_state{node="primary",state="open"} 1'
                        in metrics(p), timeout=5), "the breaker did not open"
        time.sleep(1.5)  # past recovery_timeout_secs: one probe may go
        with p.connect() as c:
            # the probe is served by an idle pooled server: its answer
            # closes the breaker, so the next statements are not refused
            assert wait_for(lambda: _try(c), timeout=20), "no probe got through"
            assert breaker_closed(p), "a successful probe left the breaker half-open"
            for _ in range(5):
                assert c.execute("SELECT 1").fetchone()[0] == 1
        assert "circuit breaker for node primary: closed" in p.log()
    finally:
        fwd.close()


def _try(c):
    try:
        return c.execute("SELECT 1").fetchone()[0] == 1
    except psycopg.OperationalError:
        return False


def test_listen_the_hub_cannot_confirm_gets_57014_after_the_wait_timeout(pg, proxy, config):
    fwd = Forwarder(pg.port)
    try:
        cfg = config(mode="transaction",
                     pool={"max_pool_size": 5, "query_wait_timeout_secs": 2,
                           "server_connect_timeout_secs": 60},
                     health_check_interval_secs=600,
                     routing={"lag_check_interval_secs": 600})
        cfg["nodes"][0]["port"] = fwd.port
        p = proxy(cfg)
        with p.connect() as c:
            c.execute("SELECT 1")  # a pooled server through the relay
            fwd.swallow = True  # the hub's connection is accepted, never answered
            t0 = time.monotonic()
            with pytest.raises(psycopg.Error) as e:
                bounded(lambda: c.execute("LISTEN slow_hub_chan"), 40)
            assert e.value.sqlstate == "57014", e.value
            assert "query_wait_timeout_secs" in str(e.value), e.value
            assert time.monotonic() - t0 < 30
            assert c.execute("SELECT 2").fetchone()[0] == 2  # the connection stays
    finally:
        fwd.close()


def pool_idle(p):
    """helios_pool_servers_idle of alice's pool on the primary (None if absent)."""
    for line in metrics(p).splitlines():
        if (line.startswith("helios_pool_servers_idle{") and '"appdb"' in line
                and '"alice"' in line and '"primary"' in line):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def test_dead_idle_servers_leave_the_pool_without_a_client_asking(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 10, "idle_timeout_secs": 0}))
    fill_pool(p, 4)
    assert wait_for(lambda: pool_idle(p) == 4, timeout=15), metrics(p)
    terminate(pg, alice_backends(pg, "idle"))
    # the once-a-second maintenance finds them dead and closes them
    assert wait_for(lambda: pool_idle(p) == 0, timeout=15), pool_idle(p)
    assert "circuit breaker for node primary: open" not in p.log()
