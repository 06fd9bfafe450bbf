"""asyncpg driver steps against HeliosProxy; see tests/drivers/README.md.

usage: steps_asyncpg.py STEP...   (connection from the DRV_* environment)
Prints "ok STEP" per step; on the first failure "FAIL STEP: error" and exit 1.
"""

import asyncio
import hashlib
import io
import os
import ssl
import sys
import time

import asyncpg

E = os.environ
TABLE = E["DRV_TABLE"]
CHANNEL = E["DRV_CHANNEL"]
NOTIFY_SECS = float(E.get("DRV_NOTIFY_SECS", "10"))
BLOB = bytes(range(256))


async def connect():
    # ssl="require": TLS without certificate checks, as libpq's sslmode=require
    return await asyncpg.connect(host=E["DRV_HOST"], port=int(E["DRV_PORT"]), user=E["DRV_USER"],
                                 password=E["DRV_PASSWORD"], database=E["DRV_DB"], ssl="require",
                                 timeout=10)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def step_connect(conn):
    check(isinstance(conn._transport.get_extra_info("ssl_object"), ssl.SSLObject), "not TLS")
    check(await conn.fetchval("SELECT current_user") == E["DRV_USER"], "current_user")


async def step_prepared(conn):
    # conn.prepare: a named Parse, then Bind/Execute per call
    st = await conn.prepare("SELECT $1::int * 2, $2::text || '!'")
    for i in range(3):
        row = await st.fetchrow(i, f"v{i}")
        check(tuple(row) == (i * 2, f"v{i}!"), f"execute {i}: {row}")


async def step_txn_commit(conn):
    async with conn.transaction():
        await conn.execute(f"INSERT INTO {TABLE} VALUES ($1, $2), ($3, $4)", 1, "a", 2, "b")
    n = await conn.fetchval(f"SELECT count(*) FROM {TABLE} WHERE id IN (1, 2)")
    check(n == 2, f"committed rows {n}")


async def step_txn_rollback(conn):
    tr = conn.transaction()
    await tr.start()
    await conn.execute(f"INSERT INTO {TABLE} VALUES ($1, $2)", 3, "c")
    check(await conn.fetchval(f"SELECT count(*) FROM {TABLE} WHERE id = 3") == 1, "row inside")
    await tr.rollback()
    check(await conn.fetchval(f"SELECT count(*) FROM {TABLE} WHERE id = 3") == 0, "rolled back")


async def step_copy_in(conn):
    # copy_records_to_table: COPY ... FROM STDIN (binary)
    await conn.copy_records_to_table(TABLE, records=[(i, f"row {i}") for i in range(1000, 2000)],
                                     columns=["id", "v"])
    row = await conn.fetchrow(
        f"SELECT count(*), sum(id) FROM {TABLE} WHERE id BETWEEN 1000 AND 1999")
    check(tuple(row) == (1000, sum(range(1000, 2000))), f"copied rows {row}")


async def step_copy_out(conn):
    buf = io.BytesIO()
    await conn.copy_from_query("SELECT i, 'row ' || i FROM generate_series(1, 5000) i", output=buf)
    lines = buf.getvalue().decode().splitlines()
    check(len(lines) == 5000 and lines[0] == "1\trow 1" and lines[-1] == "5000\trow 5000",
          f"COPY OUT gave {len(lines)} lines")


async def step_cancel(conn):
    # asyncpg cancels a statement when its task is cancelled (here by the
    # timeout): it sends a CancelRequest and waits for the server's answer,
    # so the 57014 is not surfaced; the proof is that pg_sleep(60) ends at
    # once and the connection is usable right after.
    t0 = time.monotonic()
    try:
        await conn.execute("SELECT pg_sleep(60)", timeout=1.0)
        raise AssertionError("pg_sleep(60) was not cancelled")
    except asyncio.TimeoutError:
        pass
    check(await conn.fetchval("SELECT 1", timeout=30) == 1, "connection usable after cancel")
    check(time.monotonic() - t0 < 30, "cancel took too long")


async def step_notify(conn):
    got = asyncio.get_running_loop().create_future()

    def on_notify(_conn, _pid, channel, payload):
        if not got.done():
            got.set_result((channel, payload))

    await conn.add_listener(CHANNEL, on_notify)  # LISTEN
    other = await connect()
    try:
        await other.execute("SELECT pg_notify($1, $2)", CHANNEL, "hello asyncpg")
    finally:
        await other.close()
    res = await asyncio.wait_for(got, NOTIFY_SECS)
    check(res == (CHANNEL, "hello asyncpg"), f"notification {res}")
    await conn.remove_listener(CHANNEL, on_notify)


async def step_large_result(conn):
    t, b = await conn.fetchrow(
        "SELECT repeat('x', 1048576), convert_to(repeat('y', 1048576), 'UTF8')")
    check(t == "x" * 1048576, "1 MiB text result")
    check(b == b"y" * 1048576, "1 MiB bytea result")


async def roundtrip(conn, text_size, bytea_size):
    text = "".join(chr(0x61 + i % 26) for i in range(text_size))
    blob = (BLOB * (bytea_size // 256 + 1))[:bytea_size]
    row = await conn.fetchrow("SELECT length($1::text), md5($1::text)", text)
    check(tuple(row) == (text_size, hashlib.md5(text.encode()).hexdigest()), f"text of {text_size}")
    row = await conn.fetchrow("SELECT length($1::bytea), md5($1::bytea)", blob)
    check(tuple(row) == (bytea_size, hashlib.md5(blob).hexdigest()), f"bytea of {bytea_size}")


async def step_param_small(conn):
    await roundtrip(conn, 60_000, 60_000)


async def step_param_70k(conn):
    await roundtrip(conn, 70_000, 70_000)


async def step_param_1mb(conn):
    await roundtrip(conn, 1 << 20, 1 << 20)


async def main(steps):
    conn = None
    for s in steps:
        try:
            if s == "connect":
                conn = await connect()
            await globals()["step_" + s](conn)
        except Exception as e:  # noqa: BLE001 - report any failure of the step
            print(f"FAIL {s}: {type(e).__name__}: {str(e).strip()}", flush=True)
            return 1
        print(f"ok {s}", flush=True)
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
