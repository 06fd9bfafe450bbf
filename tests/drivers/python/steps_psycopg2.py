"""psycopg2 (libpq) driver steps against HeliosProxy; see tests/drivers/README.md.

usage: steps_psycopg2.py STEP...   (connection from the DRV_* environment)
Prints "ok STEP" per step; on the first failure "FAIL STEP: error" and exit 1.
"""

import hashlib
import io
import os
import select
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions

E = os.environ
TABLE = E["DRV_TABLE"]
CHANNEL = E["DRV_CHANNEL"]
NOTIFY_SECS = float(E.get("DRV_NOTIFY_SECS", "10"))
BLOB = bytes(range(256))


def connect():
    c = psycopg2.connect(host=E["DRV_HOST"], port=E["DRV_PORT"], user=E["DRV_USER"],
                         password=E["DRV_PASSWORD"], dbname=E["DRV_DB"], sslmode="require",
                         connect_timeout=10)
    c.autocommit = True
    return c


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def step_connect(conn):
    check(conn.info.ssl_in_use, "connection is not TLS")
    check(one(conn, "SELECT current_user")[0] == E["DRV_USER"], "current_user")


def step_prepared(conn):
    # psycopg2 binds parameters on the client; its server-side prepared
    # statements are SQL PREPARE / EXECUTE / DEALLOCATE.
    with conn.cursor() as cur:
        cur.execute("PREPARE drv_s(int, text) AS SELECT $1 * 2, $2 || '!'")
        for i in range(3):
            cur.execute("EXECUTE drv_s(%s, %s)", (i, f"v{i}"))
            check(cur.fetchone() == (i * 2, f"v{i}!"), f"EXECUTE {i}")
        cur.execute("DEALLOCATE drv_s")


def step_deallocate(conn):
    # SQL DEALLOCATE frees the name: the same name prepares another text
    with conn.cursor() as cur:
        cur.execute("PREPARE drv_d AS SELECT 1")
        cur.execute("EXECUTE drv_d")
        check(cur.fetchone() == (1,), "EXECUTE drv_d")
        cur.execute("DEALLOCATE drv_d")
        cur.execute("PREPARE drv_d AS SELECT 2")
        cur.execute("EXECUTE drv_d")
        check(cur.fetchone() == (2,), "EXECUTE drv_d after DEALLOCATE")
        cur.execute("DEALLOCATE drv_d")


def step_txn_commit(conn):
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} VALUES (1, 'a'), (2, 'b')")
    conn.commit()
    conn.autocommit = True
    check(one(conn, f"SELECT count(*) FROM {TABLE} WHERE id IN (1, 2)")[0] == 2, "committed rows")


def step_txn_rollback(conn):
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} VALUES (3, 'c')")
        cur.execute(f"SELECT count(*) FROM {TABLE} WHERE id = 3")
        check(cur.fetchone()[0] == 1, "row visible inside the transaction")
    conn.rollback()
    conn.autocommit = True
    check(one(conn, f"SELECT count(*) FROM {TABLE} WHERE id = 3")[0] == 0, "rolled back row")


def step_copy_in(conn):
    data = "".join(f"{i}\trow {i}\n" for i in range(1000, 2000))
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {TABLE} (id, v) FROM STDIN", io.StringIO(data))
    got = one(conn, f"SELECT count(*), sum(id) FROM {TABLE} WHERE id BETWEEN 1000 AND 1999")
    check(tuple(got) == (1000, sum(range(1000, 2000))), f"copied rows {got}")


def step_copy_out(conn):
    buf = io.StringIO()
    with conn.cursor() as cur:
        cur.copy_expert(
            "COPY (SELECT i, 'row ' || i FROM generate_series(1, 5000) i) TO STDOUT", buf)
    lines = buf.getvalue().splitlines()
    check(len(lines) == 5000 and lines[0] == "1\trow 1" and lines[-1] == "5000\trow 5000",
          f"COPY OUT gave {len(lines)} lines")


def step_cancel(conn):
    t = threading.Timer(1.0, conn.cancel)  # PQcancel: a CancelRequest on a new connection
    t.start()
    t0 = time.monotonic()
    try:
        one(conn, "SELECT pg_sleep(60)")
        raise AssertionError("pg_sleep(60) was not cancelled")
    except psycopg2.errors.QueryCanceled as e:
        check(e.pgcode == "57014", f"SQLSTATE {e.pgcode}")
    finally:
        t.cancel()
    check(time.monotonic() - t0 < 30, "cancel took too long")
    check(one(conn, "SELECT 1")[0] == 1, "connection usable after cancel")


def step_notify(conn):
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {CHANNEL}")
    other = connect()
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "hello psycopg2"))
    finally:
        other.close()
    deadline = time.monotonic() + NOTIFY_SECS
    while not conn.notifies and time.monotonic() < deadline:
        select.select([conn], [], [], 1.0)
        conn.poll()
    check(conn.notifies, f"no notification within {NOTIFY_SECS} s")
    n = conn.notifies.pop(0)
    check((n.channel, n.payload) == (CHANNEL, "hello psycopg2"), f"notification {n}")
    with conn.cursor() as cur:
        cur.execute(f"UNLISTEN {CHANNEL}")


def step_large_result(conn):
    t, b = one(conn, "SELECT repeat('x', 1048576), convert_to(repeat('y', 1048576), 'UTF8')")
    check(t == "x" * 1048576, "1 MiB text result")
    check(bytes(b) == b"y" * 1048576, "1 MiB bytea result")


def roundtrip(conn, text_size, bytea_size):
    text = "".join(chr(0x61 + i % 26) for i in range(text_size))
    blob = (BLOB * (bytea_size // 256 + 1))[:bytea_size]
    got = one(conn, "SELECT length(x), md5(x) FROM (SELECT %s::text AS x) s", (text,))
    check(tuple(got) == (text_size, hashlib.md5(text.encode()).hexdigest()), f"text of {text_size}")
    got = one(conn, "SELECT length(x), md5(x) FROM (SELECT %s::bytea AS x) s",
              (psycopg2.Binary(blob),))
    check(tuple(got) == (bytea_size, hashlib.md5(blob).hexdigest()), f"bytea of {bytea_size}")


def step_param_small(conn):
    # psycopg2 binds on the client, and sends bytea as hex: the messages
    # stay under 64 KiB.
    roundtrip(conn, 60_000, 30_000)


def step_param_70k(conn):
    roundtrip(conn, 70_000, 70_000)


def step_param_1mb(conn):
    roundtrip(conn, 1 << 20, 1 << 20)


def main(steps):
    conn = None
    for s in steps:
        try:
            if s == "connect":
                conn = connect()
            globals()["step_" + s](conn)
        except Exception as e:  # noqa: BLE001 - report any failure of the step
            print(f"FAIL {s}: {type(e).__name__}: {str(e).strip()}", flush=True)
            return 1
        print(f"ok {s}", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
