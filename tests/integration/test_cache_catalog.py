"""The result cache's catalog is read with an internal request (not from a
wire client) that takes a server of the database's pool like a client
would and gives it back clean: with a pool of one server the catalog still
loads, its table dependencies still drive invalidation, and the one server
the client then uses is the one that ran the catalog query, idle, outside
any transaction."""

import psycopg

from conftest import APPDB
from test_cache import cache_config, cache_stats, connect, db, make_table, server_calls, simple  # noqa: F401

CATALOG_NEEDLE = "pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace"


def one_server_config(config):
    cfg = cache_config(config)
    cfg["pool_mode"]["max_pool_size"] = 1
    return cfg


def alice_backends(su):
    return su.execute(
        "SELECT pid, state, xact_start IS NULL FROM pg_stat_activity WHERE usename = 'alice' "
        "AND datname = %s AND backend_type = 'client backend'", (APPDB,)).fetchall()


def test_the_catalog_loads_through_a_pool_of_one_server_and_drives_invalidation(proxy, config, db):
    t = db.prefix + "_one"
    make_table(db, t)
    p = proxy(one_server_config(config))
    with connect(p, autocommit=True) as c:
        assert cache_stats(p)["catalog_loads"] >= 1
        q = f"SELECT v FROM {t} WHERE id = 1"
        for _ in range(5):
            assert simple(c, q) == [("v1",)]
        assert server_calls(db, q.split(" WHERE")[0]) == 1  # the table was known cacheable
        simple(c, f"UPDATE {t} SET v = 'w' WHERE id = 1")  # its dependency invalidates
        assert simple(c, q) == [("w",)]
        # DDL makes the catalog be read again, through the same single server
        loads = cache_stats(p)["catalog_loads"]
        simple(c, f"CREATE TABLE {t}2 (id int PRIMARY KEY)")
        simple(c, f"INSERT INTO {t}2 VALUES (7)")
        q2 = f"SELECT id FROM {t}2 WHERE id = 7"
        for _ in range(3):
            assert simple(c, q2) == [(7,)]
        assert cache_stats(p)["catalog_loads"] > loads
        assert server_calls(db, f"SELECT id FROM {t}2") == 1
        simple(c, f"DROP TABLE {t}2")
    assert len(alice_backends(db)) <= 1


def test_an_internal_request_s_server_goes_back_to_the_pool_clean(proxy, config, db):
    db.execute("SELECT pg_stat_statements_reset()")
    p = proxy(one_server_config(config))
    with connect(p, autocommit=True) as c:
        assert cache_stats(p)["catalog_loads"] >= 1
        ran = db.execute("SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements "
                         "WHERE query LIKE %s", (f"%{CATALOG_NEEDLE}%",)).fetchone()[0]
        assert ran >= 1
        # the only server of the pool, which ran the catalog query, serves the client
        pid = simple(c, "SELECT pg_backend_pid()")[0][0]
        backends = alice_backends(db)
        assert [b[0] for b in backends] == [pid], backends
        # and it came back idle, outside a transaction, with the client's settings
        assert all(b[1] == "idle" and b[2] for b in backends), backends
        simple(c, "SET application_name = 'mine'")
        assert simple(c, "SHOW application_name") == [("mine",)]
        assert simple(c, "SELECT 1 FROM pg_class LIMIT 1") == [(1,)]
