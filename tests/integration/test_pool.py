"""Pool limits: max_pool_size under 50 concurrent clients, query wait
timeout, pgbench."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

import pgwire
from conftest import ALICE, APPDB, ServerConnSampler, run


def test_pool_size_caps_server_connections(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 5, "query_wait_timeout_secs": 60}))
    assert pg.wait_server_conns(ALICE[0], APPDB, 0) == 0, "server connections left over from earlier tests"

    def client(i):
        with psycopg.connect(p.dsn(ALICE[0], ALICE[1], APPDB, connect_timeout=60)) as conn:
            conn.execute("SELECT pg_sleep(0.2)")
            return conn.execute("SELECT %s::int", (i,)).fetchone()[0]

    with ServerConnSampler(pg, ALICE[0], APPDB) as sampler:
        with ThreadPoolExecutor(max_workers=50) as ex:
            results = list(ex.map(client, range(50), timeout=90))
    samples = sampler.samples
    assert results == list(range(50))
    assert samples and max(samples) >= 1, "the sampler never saw a server connection"
    assert max(samples) <= 5, f"up to {max(samples)} server connections with max_pool_size = 5"


def test_query_wait_timeout(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 1, "query_wait_timeout_secs": 1}))
    with p.connect() as holder:
        holder.execute("SELECT 1")  # the only server connection, held for the session
        t0 = time.monotonic()
        with pgwire.Conn("127.0.0.1", p.port, timeout=15) as c:
            res = c.startup(ALICE[0], APPDB, ALICE[1])
            if res.ok:
                # login done without a server; the wait starts with the first query
                try:
                    c.query("SELECT 1")
                    raise AssertionError("second client got a server connection past max_pool_size = 1")
                except pgwire.PgError as e:
                    error = e.fields
            else:
                error = res.error
        took = time.monotonic() - t0
        assert error, f"no ErrorResponse for the waiting client: {res}"
        assert error["C"] == "53300", error
        assert APPDB in error["M"] and ALICE[0] in error["M"], f"message should name the pool: {error}"
        assert 0.8 <= took < 5, f"error after {took:.2f} s, query_wait_timeout_secs = 1"
        assert holder.execute("SELECT 'holder ok'").fetchone() == ("holder ok",)


def test_pgbench_select_only(pg, proxy, config):
    run([str(pg.bin / "pgbench"), "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", ALICE[0], APPDB], env=pg.env(password=ALICE[1]), timeout=120)
    p = proxy(config(pool={"max_pool_size": 20}))
    r = run([str(pg.bin / "pgbench"), "-S", "-c", "20", "-j", "2", "-T", "5", "-n",
             "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0], APPDB],
            env=pg.env(password=ALICE[1]), timeout=60)
    out = r.stdout
    assert re.search(r"(?m)^number of failed transactions: 0\b", out), out + r.stderr
    tps = re.search(r"(?m)^tps = ([0-9.]+)", out)
    assert tps and float(tps.group(1)) > 0, out
