"""Plain clients through the proxy: psql, psycopg, Unix socket, replication."""

import tempfile

from conftest import ALICE, APPDB, REPL_USER, run


def test_psql_select_1(pg, proxy, config):
    p = proxy(config())
    r = run([str(pg.bin / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(p.port),
             "-U", ALICE[0], "-d", APPDB, "-c", "select 1"],
            env=pg.env(password=ALICE[1]), timeout=30)
    assert r.stdout.strip() == "1"


def test_psycopg_queries(pg, proxy, config):
    p = proxy(config())
    with p.connect() as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (ALICE[0], APPDB)
        rows = conn.execute("SELECT g, md5(g::text) FROM generate_series(1, 1000) g").fetchall()
        assert len(rows) == 1000 and rows[-1][0] == 1000
        # extended protocol with parameters, and a transaction
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE t (a int, b text)")
            conn.execute("INSERT INTO t VALUES (%s, %s), (%s, %s)", (1, "x", 2, None))
        assert conn.execute("SELECT sum(a), count(b) FROM t").fetchone() == (3, 1)
        # an error leaves the session usable
        try:
            conn.execute("SELECT 1/0")
            raise AssertionError("division by zero did not fail")
        except Exception as e:  # psycopg.errors.DivisionByZero
            assert getattr(e, "sqlstate", None) == "22012", e
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_unix_socket(pg, proxy, config):
    # A short folder: Unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="hx-") as d:
        p = proxy(config(unix_socket_dir=d))
        r = run([str(pg.bin / "psql"), "-X", "-A", "-t", "-h", d, "-p", str(p.port),
                 "-U", ALICE[0], "-d", APPDB, "-c", "select 'via unix ' || current_user"],
                env=pg.env(password=ALICE[1]), timeout=30)
        assert r.stdout.strip() == "via unix alice"
        p.stop()


def test_replication_connection_identify_system(pg, proxy, config):
    p = proxy(config())
    conninfo = (f"host=127.0.0.1 port={p.port} user={REPL_USER[0]} password={REPL_USER[1]} "
                f"dbname={APPDB} replication=database connect_timeout=10")
    r = run([str(pg.bin / "psql"), "-X", "-A", conninfo, "-c", "IDENTIFY_SYSTEM"],
            env=pg.env(), timeout=30)
    header, row = r.stdout.splitlines()[:2]
    assert header.split("|") == ["systemid", "timeline", "xlogpos", "dbname"]
    systemid = pg.su.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    assert row.split("|")[0] == systemid
    assert row.split("|")[3] == APPDB
