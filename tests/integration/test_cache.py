"""Query result cache: hits never reach the server, writes through the proxy
invalidate before their CommandComplete, nothing volatile or role-dependent is
shared, TTL, the memory cap, the extended protocol and single-flight.

Server executions are counted with pg_stat_statements (the test cluster
preloads it). Every test uses its own tables, made before its proxy starts
(the proxy reads the catalog when a pool first connects) or through the proxy
(DDL makes it read the catalog again)."""

import json
import threading
import time
import urllib.request
import uuid

import psycopg
import pytest

from conftest import APPDB, MD5USER, helioctl, wait_for


def cache_stats(p):
    doc = json.loads(helioctl(p, "--json", "cache", "stats").stdout)
    reps = [dp["report"] for dp in doc["dataplanes"] if dp.get("report")]
    assert reps, doc
    return reps[0].get("cache", {})


def cache_config(config, **cache):
    cfg = config(mode="transaction")
    cfg["cache"] = {"enabled": True, **cache}
    return cfg


@pytest.fixture
def db(pg):
    """A superuser connection to appdb with pg_stat_statements, and a unique
    name prefix for this test's objects."""
    with pg.superuser(dbname=APPDB) as su:
        su.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        su.prefix = "c" + uuid.uuid4().hex[:10]
        yield su


def server_calls(su, needle):
    """Times the server ran statements whose text contains needle."""
    row = su.execute(
        "SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements s "
        "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.query LIKE %s "
        "AND s.query ILIKE 'select%%' "
        "AND s.query NOT LIKE '%%pg_stat_statements%%'",
        (APPDB, f"%{needle}%")).fetchone()
    return row[0]


def connect(p, **kw):
    """A client of p whose database's catalog the proxy has read (the first
    statement of a database goes to the server uncached while it reads it)."""
    c = p.connect(**kw)
    simple(c, "SELECT 1")
    return c


def simple(conn, sql):
    """Runs sql with the simple query protocol; returns all rows."""
    cur = psycopg.ClientCursor(conn)
    cur.execute(sql)
    return cur.fetchall() if cur.description else None


def make_table(su, name, rows=3):
    su.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v text)")
    su.execute(f"INSERT INTO {name} SELECT g, 'v' || g FROM generate_series(1, {rows}) g")
    su.execute(f"ALTER TABLE {name} OWNER TO alice")


def test_a_repeated_select_is_answered_without_the_server(proxy, config, db):
    t = db.prefix + "_t"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        for _ in range(10):
            assert simple(c, f"SELECT v FROM {t} WHERE id = 2") == [("v2",)]
    assert server_calls(db, t) == 1
    st = cache_stats(p)
    assert st["hits"] >= 9 and st["stores"] >= 1 and st["entries"] >= 1, st


def test_an_update_through_the_proxy_invalidates_before_its_command_complete(proxy, config, db):
    t = db.prefix + "_u"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as reader, connect(p, autocommit=True) as writer:
        for i in range(20):
            assert simple(reader, f"SELECT v FROM {t} WHERE id = 1") != [(f"new{i}",)]
            simple(reader, f"SELECT v FROM {t} WHERE id = 1")  # cached now
            simple(writer, f"UPDATE {t} SET v = 'new{i}' WHERE id = 1")
            # the UPDATE's CommandComplete has arrived: no reader may see the old row
            assert simple(reader, f"SELECT v FROM {t} WHERE id = 1") == [(f"new{i}",)]
            # extended protocol writes invalidate too
            writer.execute(f"UPDATE {t} SET v = %s WHERE id = 1", (f"ext{i}",))
            assert simple(reader, f"SELECT v FROM {t} WHERE id = 1") == [(f"ext{i}",)]
    st = cache_stats(p)
    assert st["hits"] >= 20, st


def test_a_write_in_a_transaction_invalidates_again_at_commit(proxy, config, db):
    t = db.prefix + "_x"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as reader, p.connect(autocommit=False) as writer:
        q = f"SELECT v FROM {t} WHERE id = 3"
        assert simple(reader, q) == [("v3",)]
        simple(writer, f"UPDATE {t} SET v = 'committed' WHERE id = 3")  # opens a transaction
        # not committed yet: the reader (re)caches the old row meanwhile
        assert simple(reader, q) == [("v3",)]
        assert simple(reader, q) == [("v3",)]
        writer.commit()
        assert simple(reader, q) == [("committed",)]


def test_a_trigger_s_writes_to_another_table_invalidate_it(proxy, config, db):
    a, b = db.prefix + "_ta", db.prefix + "_tb"
    make_table(db, a)
    db.execute(f"CREATE TABLE {b} (n int)")
    db.execute(f"GRANT ALL ON {b} TO alice")
    db.execute(f"CREATE FUNCTION {a}_f() RETURNS trigger LANGUAGE plpgsql AS "
               f"$$ BEGIN INSERT INTO {b} VALUES (NEW.id); RETURN NEW; END $$")
    db.execute(f"CREATE TRIGGER {a}_trg AFTER INSERT ON {a} FOR EACH ROW EXECUTE FUNCTION {a}_f()")
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        q = f"SELECT count(*) FROM {b}"
        assert simple(c, q) == [(0,)]
        assert simple(c, q) == [(0,)]
        simple(c, f"INSERT INTO {a} VALUES (10, 'x')")
        assert simple(c, q) == [(1,)]


def test_ddl_through_the_proxy_invalidates_and_rereads_the_catalog(proxy, config, db):
    t = db.prefix + "_d"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        q = f"SELECT * FROM {t} WHERE id = 1"
        assert simple(c, q) == [(1, "v1")]
        assert simple(c, q) == [(1, "v1")]
        simple(c, f"ALTER TABLE {t} ADD COLUMN w int DEFAULT 7")
        assert simple(c, q) == [(1, "v1", 7)]
        # a table created through the proxy is cacheable once the catalog is read again
        n = db.prefix + "_new"
        simple(c, f"CREATE TABLE {n} AS SELECT 1 AS k")
        for _ in range(3):
            assert simple(c, f"SELECT k FROM {n}") == [(1,)]
    assert server_calls(db, f"SELECT k FROM {n}") <= 2


def test_roles_with_row_level_security_never_see_each_other_s_rows(proxy, config, db):
    t = db.prefix + "_rls"
    db.execute(f"CREATE TABLE {t} (owner text, secret text)")
    db.execute(f"INSERT INTO {t} VALUES ('alice', 'a-secret'), ('md5user', 'm-secret')")
    db.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
    db.execute(f"CREATE POLICY own ON {t} USING (owner = current_user)")
    db.execute(f"GRANT SELECT ON {t} TO alice, md5user")
    priv = db.prefix + "_priv"
    make_table(db, priv)  # alice only
    p = proxy(cache_config(config, cache_rls_tables=True))
    with connect(p, autocommit=True) as a, \
            connect(p, user=MD5USER[0], password=MD5USER[1], autocommit=True) as m:
        q = f"SELECT secret FROM {t}"
        for _ in range(3):
            assert simple(a, q) == [("a-secret",)]
            assert simple(m, q) == [("m-secret",)]
        assert server_calls(db, t) == 2  # one per role, then hits
        pq = f"SELECT v FROM {priv} WHERE id = 1"
        assert simple(a, pq) == [("v1",)]
        assert simple(a, pq) == [("v1",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            simple(m, pq)
    # without cache_rls_tables, a table with RLS is not cached at all
    p.stop()
    p2 = proxy(cache_config(config))
    with connect(p2, autocommit=True) as a:
        before = server_calls(db, t)
        for _ in range(3):
            assert simple(a, f"SELECT secret FROM {t}") == [("a-secret",)]
        assert server_calls(db, t) == before + 3


def test_now_random_and_nextval_are_never_cached(proxy, config, db):
    s = db.prefix + "_seq"
    db.execute(f"CREATE SEQUENCE {s}")
    db.execute(f"GRANT ALL ON {s} TO alice")
    t = db.prefix + "_tm"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        nows = {simple(c, "SELECT now()")[0][0] for _ in range(3)}
        assert len(nows) == 3
        rands = {simple(c, "SELECT random()")[0][0] for _ in range(3)}
        assert len(rands) == 3
        vals = [simple(c, f"SELECT nextval('{s}')")[0][0] for _ in range(3)]
        assert vals == [1, 2, 3]
        for _ in range(2):
            simple(c, f"SELECT id FROM {t} WHERE v < 'now'::text OR now() IS NULL")
            simple(c, f"SELECT id FROM {t} WHERE 'today'::date IS NULL")
            c.execute(f"SELECT id FROM {t} WHERE %s::timestamptz IS NULL", ("now",))
    assert server_calls(db, f"FROM {t}") == 6
    assert cache_stats(p)["uncacheable"] >= 12


def test_set_search_path_changes_the_key(proxy, config, db):
    s1, s2 = db.prefix + "_s1", db.prefix + "_s2"
    for i, s in ((1, s1), (2, s2)):
        db.execute(f"CREATE SCHEMA {s} AUTHORIZATION alice")
        db.execute(f"CREATE TABLE {s}.tt (v int)")
        db.execute(f"INSERT INTO {s}.tt VALUES ({i})")
        db.execute(f"GRANT ALL ON {s}.tt TO alice")
    p = proxy(cache_config(config))
    before = server_calls(db, "SELECT v FROM tt")  # shared text: count this test's own
    with connect(p, autocommit=True) as c:
        for _ in range(2):
            simple(c, f"SET search_path TO {s1}")
            assert simple(c, "SELECT v FROM tt") == [(1,)]
            simple(c, f"SET search_path TO {s2}")
            assert simple(c, "SELECT v FROM tt") == [(2,)]
    assert server_calls(db, "SELECT v FROM tt") == before + 2


def test_entries_expire_after_their_ttl(proxy, config, db):
    t = db.prefix + "_ttl"
    make_table(db, t)
    p = proxy(cache_config(config, default_ttl_secs=1))
    with connect(p, autocommit=True) as c:
        q = f"SELECT v FROM {t} WHERE id = 1"
        simple(c, q)
        simple(c, q)
        assert server_calls(db, t) == 1
        time.sleep(1.3)
        simple(c, q)
        assert server_calls(db, t) == 2
        # a hint's TTL wins over the default
        h = f"SELECT /* helios:cache=ttl:3 */ v FROM {t} WHERE id = 2"
        simple(c, h)
        time.sleep(1.3)
        simple(c, h)
        assert server_calls(db, f"FROM {t} WHERE id = $1") <= 3
    assert cache_stats(p)["expired"] >= 1


def test_cache_skip_hint_bypasses_the_cache(proxy, config, db):
    t = db.prefix + "_skip"
    make_table(db, t)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        for _ in range(3):
            simple(c, f"SELECT /* helios:cache=skip */ v FROM {t} WHERE id = 1")
    assert server_calls(db, t) == 3


def test_the_memory_cap_evicts_and_large_answers_are_not_stored(proxy, config, db):
    t = db.prefix + "_big"
    db.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    db.execute(f"INSERT INTO {t} SELECT g, repeat(md5(g::text), 3000) FROM generate_series(1, 200) g")
    db.execute(f"GRANT ALL ON {t} TO alice")
    p = proxy(cache_config(config, max_memory_mb=10, max_entry_kb=200))
    with connect(p, autocommit=True) as c:
        for i in range(1, 201):  # ~96 KB each: 200 of them need ~19 MB
            rows = simple(c, f"SELECT v FROM {t} WHERE id = {i}")
            assert len(rows[0][0]) == 96000
        st = cache_stats(p)
        assert st["bytes"] <= 10 * 1024 * 1024 and st["max_bytes"] == 10 * 1024 * 1024, st
        assert st["evictions"] > 0 and st["entries"] < 200, st
        # the newest are still there; an answer over max_entry_kb never is
        before = server_calls(db, t)
        assert len(simple(c, f"SELECT v FROM {t} WHERE id = 200")[0][0]) == 96000
        assert server_calls(db, t) == before
        big = f"SELECT string_agg(v, '') FROM {t} WHERE id <= 3"
        simple(c, big)
        simple(c, big)
        assert server_calls(db, f"FROM {t} WHERE id <=") == 2
    assert cache_stats(p)["too_large"] >= 2


def test_extended_protocol_keys_on_bound_parameters(proxy, config, db):
    t = db.prefix + "_ext"
    make_table(db, t, rows=5)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        for _ in range(3):
            for i in (1, 2, 3):
                got = c.execute(f"SELECT v FROM {t} WHERE id = %s", (i,), prepare=False)
                assert got.fetchall() == [(f"v{i}",)]
        # named (prepared) statements too
        for _ in range(3):
            for i in (4, 5):
                got = c.execute(f"SELECT v, id FROM {t} WHERE id = %s", (i,), prepare=True)
                assert got.fetchall() == [(f"v{i}", i)]
        # binary results are a different answer
        cur = c.cursor(binary=True)
        for _ in range(2):
            got = cur.execute(f"SELECT id FROM {t} WHERE id = %s", (1,), prepare=False)
            assert got.fetchall() == [(1,)]
    assert server_calls(db, f"SELECT v FROM {t}") == 3
    assert server_calls(db, f"SELECT v, id FROM {t}") == 2
    assert server_calls(db, f"SELECT id FROM {t}") == 1


def test_fifty_identical_concurrent_misses_run_once_on_the_server(proxy, config, db):
    t = db.prefix + "_sf"
    make_table(db, t)
    f = db.prefix + "_slow"
    # immutable by declaration (a lie the cache must believe), and slow
    db.execute(f"CREATE FUNCTION {f}(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
               f"$$ BEGIN PERFORM pg_sleep(1); RETURN $1; END $$")
    cfg = cache_config(config)
    cfg["pool_mode"]["max_pool_size"] = 60
    p = proxy(cfg)
    n = 50
    conns = [connect(p, autocommit=True) for _ in range(n)]
    try:
        simple(conns[0], f"SELECT v FROM {t} WHERE id = 3")  # the catalog is read
        go = threading.Barrier(n)
        results, errors = [None] * n, []

        def worker(i):
            try:
                go.wait()
                results[i] = simple(conns[i], f"SELECT {f}(id), v FROM {t} WHERE id = 1")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert not errors, errors
        assert results == [[(1, "v1")]] * n
    finally:
        for c in conns:
            c.close()
    assert server_calls(db, f"{f}(id)") == 1
    assert cache_stats(p)["waits"] >= 1


def test_helioctl_cache_stats_and_flush(proxy, config, db):
    t, u = db.prefix + "_f1", db.prefix + "_f2"
    make_table(db, t)
    make_table(db, u)
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        for q in (f"SELECT v FROM {t} WHERE id = 1", f"SELECT v FROM {u} WHERE id = 1"):
            simple(c, q)
            simple(c, q)
        assert cache_stats(p)["entries"] >= 2
        out = helioctl(p, "cache", "stats").stdout
        assert out.splitlines()[0].split()[:4] == ["DATAPLANE", "ENABLED", "ENTRIES", "BYTES"]
        out = helioctl(p, "cache", "flush", t).stdout
        assert out.splitlines()[1].split()[1] == "1", out
        simple(c, f"SELECT v FROM {t} WHERE id = 1")
        simple(c, f"SELECT v FROM {u} WHERE id = 1")
        assert server_calls(db, t) == 2 and server_calls(db, u) == 1
        helioctl(p, "cache", "flush")
        assert cache_stats(p)["entries"] == 0
        helioctl(p, "cache", "bogus", check=2)


def test_views_catalogs_partitions_and_volatile_user_functions_are_not_cached(proxy, config, db):
    t = db.prefix + "_base"
    make_table(db, t)
    v, part = db.prefix + "_view", db.prefix + "_part"
    db.execute(f"CREATE VIEW {v} AS SELECT * FROM {t}")
    db.execute(f"ALTER VIEW {v} OWNER TO alice")
    db.execute(f"CREATE TABLE {part} (id int) PARTITION BY RANGE (id)")
    db.execute(f"CREATE TABLE {part}_1 PARTITION OF {part} FOR VALUES FROM (0) TO (100)")
    db.execute(f"ALTER TABLE {part} OWNER TO alice")
    db.execute(f"ALTER TABLE {part}_1 OWNER TO alice")
    vol, imm = db.prefix + "_vol", db.prefix + "_imm"
    db.execute(f"CREATE FUNCTION {vol}(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1'")
    db.execute(f"CREATE FUNCTION {imm}(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'")
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        # each twice in a row (a volatile user function may write, so running
        # one invalidates everything: it must not sit between the two)
        for q, want in ((f"SELECT v FROM {v} WHERE id = 1", [("v1",)]),
                        (f"SELECT count(*) FROM {part}", [(0,)]),
                        (f"SELECT count(*) FROM pg_class WHERE relname = '{t}'", [(1,)]),
                        (f"SELECT {vol}(id) FROM {t} WHERE id = 1", [(1,)]),
                        (f"SELECT {imm}(id) FROM {t} WHERE id = 2", [(4,)]),
                        (f"SELECT v FROM {t} WHERE id = 1 FOR SHARE", [("v1",)])):
            assert simple(c, q) == want
            assert simple(c, q) == want
    assert server_calls(db, f"FROM {v}") == 2
    assert server_calls(db, f"FROM {part}") == 2
    assert server_calls(db, "relname = $1") >= 2
    assert server_calls(db, f"{vol}(id)") == 2
    assert server_calls(db, f"{imm}(id)") == 1  # immutable user functions are cacheable
    assert server_calls(db, "FOR SHARE") >= 2


def test_a_pinned_client_neither_answers_from_nor_fills_the_cache(proxy, config, db):
    t = db.prefix + "_pin"
    make_table(db, t)
    p = proxy(cache_config(config))
    q = f"SELECT v FROM {t} WHERE id = 1"
    with connect(p, autocommit=True) as c, connect(p, autocommit=True) as other:
        # a temporary table of the same name shadows the real one for c only
        simple(c, f"CREATE TEMP TABLE {t} (id int, v text)")
        simple(c, f"INSERT INTO {t} VALUES (1, 'temp')")
        for _ in range(2):
            assert simple(c, q) == [("temp",)]
        for _ in range(2):
            assert simple(other, q) == [("v1",)]
        assert simple(c, q) == [("temp",)]


def test_statement_mode_and_read_write_split_use_the_cache(proxy, config, db, pg):
    t = db.prefix + "_split"
    make_table(db, t)
    cfg = cache_config(config)
    cfg["pool_mode"]["mode"] = "statement"
    cfg["routing"] = {"read_write_split": True}
    p = proxy(cfg)
    # the replica must have the table before the proxy reads catalogs there
    with pg.superuser(dbname=APPDB, port=pg.replica_port) as rep:
        wait_for(lambda: rep.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0], timeout=10)
    with connect(p, autocommit=True) as c, connect(p, autocommit=True) as w:
        for i in range(3):
            assert simple(c, f"SELECT v FROM {t} WHERE id = 1") == [("v1" if i == 0 else "w",)]
            if i == 0:
                simple(c, f"SELECT v FROM {t} WHERE id = 1")
                simple(w, f"UPDATE {t} SET v = 'w' WHERE id = 1")
    # the misses ran on the primary (stored); hits never left the proxy
    assert server_calls(db, f"SELECT v FROM {t}") == 2
    assert cache_stats(p)["hits"] >= 2


def test_errors_and_notices_are_not_stored(proxy, config, db):
    t = db.prefix + "_err"
    make_table(db, t)
    f = db.prefix + "_notice"
    db.execute(f"CREATE FUNCTION {f}(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
               f"$$ BEGIN RAISE NOTICE 'hello %', $1; RETURN $1; END $$")
    p = proxy(cache_config(config))
    with connect(p, autocommit=True) as c:
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        stores = cache_stats(p).get("stores", 0)
        for _ in range(2):
            with pytest.raises(psycopg.errors.DivisionByZero):
                simple(c, f"SELECT 1 / (id - 1) FROM {t} WHERE id = 1")
            assert simple(c, f"SELECT {f}(id) FROM {t} WHERE id = 3") == [(3,)]
        assert notices == ["hello 3", "hello 3"]
        assert cache_stats(p).get("stores", 0) == stores  # neither answer was kept
    assert server_calls(db, f"{f}(id)") == 2


def test_hits_show_in_top_and_metrics(proxy, config, db):
    t = db.prefix + "_top"
    make_table(db, t)
    cfg = cache_config(config)
    cfg["analytics"] = {"enabled": True}
    p = proxy(cfg)
    with connect(p, autocommit=True) as c:
        for _ in range(5):
            simple(c, f"SELECT v FROM {t} WHERE id = 1")
    doc = json.loads(helioctl(p, "--json", "top").stdout)
    qs = [q for dp in doc["dataplanes"] for q in (dp["report"] or {}).get("queries", [])
          if t in q["query"]]
    assert qs and qs[0].get("cache_hits", 0) == 4 and qs[0]["calls"] == 1, qs
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    hits = [line for line in text.splitlines() if line.startswith("helios_cache_hits_total{")]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) >= 4, hits
    assert "# TYPE helios_cache_bytes gauge" in text


def test_a_streamed_write_too_large_to_read_invalidates(proxy, config, db):
    # over 256 KiB a statement is streamed to the server unread: the cache
    # must take it as writing anything (simple query and unnamed Bind)
    t = db.prefix + "_big"
    make_table(db, t)
    p = proxy(cache_config(config))
    big = "b" * (300 * 1024)
    with connect(p, autocommit=True) as reader, connect(p, autocommit=True) as writer:
        q = f"SELECT v FROM {t} WHERE id = 2"
        assert simple(reader, q) == [("v2",)]
        assert simple(reader, q) == [("v2",)]  # cached
        assert server_calls(db, t) == 1
        simple(writer, f"UPDATE {t} SET v = 'x{len(big)}' WHERE id = 2 OR v = '{big}'")
        assert simple(reader, q) == [(f"x{len(big)}",)]
        assert simple(reader, q) == [(f"x{len(big)}",)]  # cached again
        assert server_calls(db, t) == 2
        writer.execute(f"UPDATE {t} SET v = 'y' WHERE id = 2 OR v = %s", ("c" * (400 * 1024),))
        assert simple(reader, q) == [("y",)]
