"""The result cache in session pooling: a session client keeps its server, yet
a repeated read is answered from the cache without reaching it (only when the
server owes the client nothing and is outside a transaction block), a miss is
recorded from the server's answer, writes through a session invalidate, and
answers stay in order. Same keys and rules as transaction pooling
(test_cache.py); server executions are counted with pg_stat_statements."""

import re
import time

import pgwire
from conftest import ALICE, APPDB
from test_cache import cache_stats, db, make_table, server_calls, simple  # noqa: F401


def session_cache(config, **top):
    cfg = config(mode="session", **top)
    cfg["cache"] = {"enabled": True}
    return cfg


CATALOG_READ = rf'cache: catalog of database "{APPDB}" read'


def connect(p, **kw):
    """A session client of p whose database's catalog the proxy has read
    (its first statement starts the read; a client holding its server never
    waits for it, so this waits for the log line)."""
    c = p.connect(**kw)
    simple(c, "SELECT 1")
    assert p.wait_log(CATALOG_READ, timeout=10), p.log_tail()
    return c


def test_session_repeated_select_is_answered_from_the_cache(proxy, config, db):
    t = db.prefix + "_s"
    make_table(db, t)
    p = proxy(session_cache(config))
    with connect(p) as a, connect(p) as b:
        for _ in range(5):
            assert simple(a, f"SELECT v FROM {t} WHERE id = 2") == [("v2",)]
        # another session (another server) gets the same entry
        for _ in range(5):
            assert simple(b, f"SELECT v FROM {t} WHERE id = 2") == [("v2",)]
        # the sessions still have their servers
        assert a.execute("SELECT pg_backend_pid()").fetchone() != \
            b.execute("SELECT pg_backend_pid()").fetchone()
    assert server_calls(db, t) == 1
    st = cache_stats(p)
    assert st["hits"] >= 9 and st["stores"] >= 1, st
    # proven behind the proxy's back too: a change it did not see is not seen
    db.execute(f"UPDATE {t} SET v = 'behind' WHERE id = 2")
    with connect(p) as c:
        assert simple(c, f"SELECT v FROM {t} WHERE id = 2") == [("v2",)]


def test_session_write_invalidates(proxy, config, db):
    t = db.prefix + "_w"
    make_table(db, t)
    p = proxy(session_cache(config))
    with connect(p) as reader, connect(p) as writer:
        q = f"SELECT v FROM {t} WHERE id = 1"
        for i in range(5):
            simple(reader, q)
            simple(reader, q)  # cached now
            simple(writer, f"UPDATE {t} SET v = 'new{i}' WHERE id = 1")
            assert simple(reader, q) == [(f"new{i}",)]
            writer.execute(f"UPDATE {t} SET v = %s WHERE id = 1", (f"ext{i}",))
            assert simple(reader, q) == [(f"ext{i}",)]
            # the writer's own session, too
            simple(writer, q)
            simple(writer, f"UPDATE {t} SET v = 'own{i}' WHERE id = 1")
            assert simple(writer, q) == [(f"own{i}",)]
    st = cache_stats(p)
    assert st["hits"] >= 5, st


def test_session_transaction_block_is_not_served_from_the_cache(proxy, config, db):
    t = db.prefix + "_tx"
    make_table(db, t)
    p = proxy(session_cache(config))
    q = f"SELECT v FROM {t} WHERE id = 3"
    with connect(p) as c, connect(p, autocommit=False) as w:
        assert simple(c, q) == [("v3",)]
        assert simple(c, q) == [("v3",)]
        before = server_calls(db, t)
        simple(c, "BEGIN")
        assert simple(c, q) == [("v3",)]
        assert simple(c, q) == [("v3",)]
        simple(c, "COMMIT")
        assert server_calls(db, t) == before + 2
        # a write in an open transaction: the session's own reads see it
        simple(w, f"UPDATE {t} SET v = 'mine' WHERE id = 3")
        assert simple(w, q) == [("mine",)]
        assert simple(c, q) == [("v3",)]
        w.commit()
        assert simple(c, q) == [("mine",)]
        assert simple(w, q) == [("mine",)]


def test_session_extended_protocol_is_answered_from_the_cache(proxy, config, db):
    t = db.prefix + "_e"
    make_table(db, t, rows=5)
    p = proxy(session_cache(config))
    with connect(p) as c, connect(p) as d:
        for _ in range(3):
            for i in (1, 2, 3):
                got = c.execute(f"SELECT v FROM {t} WHERE id = %s", (i,), prepare=False)
                assert got.fetchall() == [(f"v{i}",)]
        for _ in range(3):
            got = d.execute(f"SELECT v FROM {t} WHERE id = %s", (2,), prepare=False)
            assert got.fetchall() == [("v2",)]
        # named (prepared) statements go to the server, and stay right
        for _ in range(3):
            for i in (4, 5):
                got = c.execute(f"SELECT v, id FROM {t} WHERE id = %s", (i,), prepare=True)
                assert got.fetchall() == [(f"v{i}", i)]
        # a write through a prepared statement invalidates
        for i in range(2):
            c.execute(f"UPDATE {t} SET v = %s WHERE id = 1", (f"p{i}",), prepare=True)
            got = d.execute(f"SELECT v FROM {t} WHERE id = %s", (1,), prepare=False)
            assert got.fetchall() == [(f"p{i}",)]
    # each session's first run parses its unnamed statement on its server
    # c: its first run parses the unnamed statement on its server, its
    # second and third miss and are recorded, id 1 once more; d: its first
    # run; each read after an UPDATE (14 runs)
    assert server_calls(db, f"SELECT v FROM {t}") <= 7
    assert cache_stats(p)["hits"] >= 7


def test_session_pipelined_batch_stays_in_order(proxy, config, db):
    t = db.prefix + "_pl"
    make_table(db, t, rows=5)
    p = proxy(session_cache(config))
    q = f"SELECT v FROM {t} WHERE id = 4"
    with connect(p) as c:
        simple(c, q)
        simple(c, q)
    c = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, password=ALICE[1])
    try:
        # a hit first (nothing owed), then queries behind a slow one
        c.send_raw(pgwire.message(b"Q", pgwire.cstr(q))
                   + pgwire.message(b"Q", pgwire.cstr("SELECT 'slow' FROM pg_sleep(0.3)"))
                   + pgwire.message(b"Q", pgwire.cstr(q))
                   + pgwire.message(b"Q", pgwire.cstr("SELECT 'last'")))
        rows = []
        zs = 0
        while zs < 4:
            m = c.read_message(timeout=10)
            assert m is not None
            assert m[0] != b"E", pgwire.parse_fields(m[1])
            if m[0] == b"D":
                n = int.from_bytes(m[1][:2], "big")
                assert n == 1
                ln = int.from_bytes(m[1][2:6], "big")
                rows.append(m[1][6:6 + ln].decode())
            if m[0] == b"Z":
                zs += 1
        assert rows == ["v4", "slow", "v4", "last"], rows
        # in psycopg's pipeline mode too
    finally:
        c.close()
    with connect(p) as c:
        with c.pipeline():
            curs = []
            for i in range(30):
                cur = c.cursor()
                cur.execute(f"SELECT v FROM {t} WHERE id = %s", (i % 5 + 1,), prepare=False)
                curs.append(cur)
        assert [cur.fetchone()[0] for cur in curs] == [f"v{i % 5 + 1}" for i in range(30)]


def test_session_setting_change_stops_lookups(proxy, config, db):
    """A session that changes a setting of the key (or shadows a table with a
    temporary one) no longer reads from the cache; neutral settings keep it."""
    t = db.prefix + "_g"
    make_table(db, t)
    p = proxy(session_cache(config))
    q = f"SELECT v FROM {t} WHERE id = 1"
    with connect(p) as c:
        simple(c, q)
        simple(c, q)
        simple(c, "SET application_name = 'x'")
        before = server_calls(db, t)
        simple(c, q)
        assert server_calls(db, t) == before  # still a hit
        simple(c, f"CREATE TEMP TABLE {t} (id int, v text)")
        simple(c, f"INSERT INTO {t} VALUES (1, 'temp')")
        assert simple(c, f"SELECT v FROM {t} WHERE id = 1") == [("temp",)]
    with connect(p) as c:
        simple(c, "SET search_path = pg_catalog, public")
        before = server_calls(db, t)
        assert simple(c, q) == [("v1",)]
        assert server_calls(db, t) == before + 1


def test_session_tls_client_uses_the_cache(proxy, config, db, cert):
    crt, key = cert
    t = db.prefix + "_tls"
    make_table(db, t)
    p = proxy(session_cache(config, tls={"client_mode": "require", "cert_file": str(crt),
                                         "key_file": str(key)}))
    with connect(p, sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        for _ in range(5):
            assert simple(c, f"SELECT v FROM {t} WHERE id = 2") == [("v2",)]
        for _ in range(3):
            got = c.execute(f"SELECT v FROM {t} WHERE id = %s", (3,), prepare=False)
            assert got.fetchall() == [("v3",)]
    # pg_stat_statements folds both texts into one: the simple one once, the
    # extended one at most twice (its session's unnamed statement, a miss)
    assert server_calls(db, t) <= 3
    assert cache_stats(p)["hits"] >= 5


def _parse(name, sql):
    return pgwire.message(b"P", pgwire.cstr(name) + pgwire.cstr(sql) + b"\0\0")


def _bind_execute_sync(name):
    return (pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr(name) + b"\0\0\0\0\0\0")
            + pgwire.message(b"E", pgwire.cstr("") + b"\0\0\0\0")
            + pgwire.message(b"S"))


def _until_ready(c):
    kinds = []
    while not kinds or kinds[-1] != b"Z":
        m = c.read_message(timeout=10)
        assert m is not None, kinds
        kinds.append(m[0])
    return kinds


def test_session_statement_name_taken_by_sql_prepare_still_invalidates(proxy, config, db):
    """A Parse the server refuses as a duplicate (42P05) leaves the server's
    own statement under that name: its Binds must invalidate as anything."""
    t = db.prefix + "_dup"
    make_table(db, t)
    p = proxy(session_cache(config))
    q = f"SELECT v FROM {t} WHERE id = 1"
    w = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, password=ALICE[1])
    try:
        with connect(p) as reader:
            assert simple(reader, q) == [("v1",)]
            assert simple(reader, q) == [("v1",)]  # cached
            w.query(f"PREPARE w1 AS UPDATE {t} SET v = 'dup' WHERE id = 1")
            w.send_raw(_parse("w1", "SELECT 1") + _bind_execute_sync("w1"))
            assert _until_ready(w) == [b"E", b"Z"]
            w.send_raw(_bind_execute_sync("w1"))
            assert _until_ready(w) == [b"2", b"C", b"Z"]
            assert simple(reader, q) == [("dup",)]
    finally:
        w.close()



def test_session_whose_first_statement_sets_a_key_setting_is_not_served(proxy, config, db):
    """The key's settings are the session's startup ones: a session that
    changes one (one the server does not report) before its first read never
    gets another session's text."""
    t = db.prefix + "_fd"
    db.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, f float8)")
    db.execute(f"INSERT INTO {t} VALUES (1, 0.1::float8 + 0.2::float8)")
    db.execute(f"ALTER TABLE {t} OWNER TO alice")
    p = proxy(session_cache(config))
    q = f"SELECT f FROM {t} WHERE id = 1"

    def raw():
        return pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, password=ALICE[1])

    a = raw()
    try:
        a.query("SELECT 1")
        assert p.wait_log(CATALOG_READ, timeout=10), p.log_tail()
        assert a.query(q) == [["0.30000000000000004"]]
        assert a.query(q) == [["0.30000000000000004"]]  # cached
    finally:
        a.close()
    b = raw()
    try:
        b.query("SET extra_float_digits = 0")
        for _ in range(2):
            assert b.query(q) == [["0.3"]]
    finally:
        b.close()
    assert cache_stats(p)["hits"] >= 1


def test_session_client_holding_the_only_server_is_not_held_up_by_the_catalog_read(
        proxy, config, db):
    """With max_pool_size 1 the session client holds the server the catalog
    read would need: its statements go to its server uncached at once (they
    waited 10 s each, for the read's timeout, before)."""
    cfg = session_cache(config)
    cfg["pool_mode"]["max_pool_size"] = 1
    p = proxy(cfg)
    with p.connect() as c:
        t0 = time.monotonic()
        c.execute("CREATE TEMP TABLE held (v text)")
        assert simple(c, "SELECT count(*) FROM held") == [(0,)]
        took = time.monotonic() - t0
        assert not re.search(CATALOG_READ, p.log()), "the read cannot have had a server"
        assert took < 5, f"the statements waited {took:.1f} s for the catalog read"
