"""CancelRequest through the pooler: a client's cancel stops its own
statement and never one of another client that shares its server.

PostgreSQL signals the backend after the postmaster's child has read the
CancelRequest, and signals it twice (the process, then its process group):
a cancel sent near the end of a statement lands after the statement ended.
The proxy must not hand the server to another client before the cancel
connection has been closed by PostgreSQL (the signals were sent by then)."""

import os
import random
import re
import signal
import threading

import psycopg
import pytest


class Neighbour:
    """A client running short statements until stopped, on the same pool."""

    def __init__(self, p, reconnect=False):
        self.p, self.reconnect = p, reconnect
        self.stop = threading.Event()
        self.errors, self.cancelled, self.statements = [], 0, 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        try:
            while not self.stop.is_set():
                with self.p.connect() as c:
                    while not self.stop.is_set():
                        try:
                            c.execute("SELECT pg_sleep(0.001)")
                            self.statements += 1
                        except psycopg.errors.QueryCanceled:
                            self.cancelled += 1
                        if self.reconnect:
                            break
        except psycopg.Error as e:
            self.errors.append(e)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)
        return False


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_cancel_near_statement_end_never_cancels_the_next_client_of_the_server(
        proxy, config, mode):
    # one server for both clients: whatever A's cancel hits after A's
    # statement ended is B's statement (transaction pooling) or the server
    # B gets after A left (session pooling)
    p = proxy(config(mode=mode, pool={"max_pool_size": 1}))
    rng = random.Random(14)
    own_cancelled = own_done = 0
    if mode == "transaction":
        with Neighbour(p) as b, p.connect() as a:
            for _ in range(200):
                # the cancel lands anywhere from mid-statement to just after it
                t = threading.Timer(rng.uniform(0.004, 0.012), a.cancel)
                t.start()
                try:
                    a.execute("SELECT pg_sleep(0.008)")
                    own_done += 1
                except psycopg.errors.QueryCanceled:
                    own_cancelled += 1
                t.join()
    else:
        with Neighbour(p, reconnect=True) as b:
            for _ in range(60):
                # A's statement ends, A leaves; the server is reset and
                # handed to B while A's cancel may still be travelling
                with p.connect() as a:
                    t = threading.Timer(rng.uniform(0.004, 0.012), a.cancel)
                    t.start()
                    try:
                        a.execute("SELECT pg_sleep(0.008)")
                        own_done += 1
                    except psycopg.errors.QueryCanceled:
                        own_cancelled += 1
                    t.join()
    assert not b.errors, b.errors
    assert b.statements > 0
    assert own_cancelled + own_done > 0
    assert b.cancelled == 0, (
        f"{b.cancelled} statement(s) of the other client were cancelled "
        f"(A: {own_cancelled} cancelled, {own_done} completed)\n{p.log_tail()}")
    assert p.running()


def test_a_cancel_postgresql_never_answers_holds_the_server_only_for_a_bounded_time(
        pg, proxy, config):
    # the postmaster is stopped: the cancel connection is accepted by the
    # kernel and never closed, so the server A released cannot be proven
    # safe; it is closed after the bound, and the clients go on once
    # PostgreSQL runs again
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with pg.superuser() as su:
        bpid = su.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{bpid}/status") as f:
            postmaster = int(re.search(r"(?m)^PPid:\s*(\d+)", f.read()).group(1))
    with p.connect() as a:
        a.execute("SELECT 1")  # A's server is logged in
        start = len(p.log())
        os.kill(postmaster, signal.SIGSTOP)
        try:
            t = threading.Timer(0.3, a.cancel)
            t.start()
            a.execute("SELECT pg_sleep(1)")  # nobody signals the backend
            t.join()
            closed = p.wait_log(r"did not finish in \d+ s: closing the server", timeout=30,
                                start=start)
            assert closed, p.log_tail()
        finally:
            os.kill(postmaster, signal.SIGCONT)
        with p.connect() as b:
            assert b.execute("SELECT 2").fetchone() == (2,)
        assert a.execute("SELECT 3").fetchone() == (3,)
    assert p.running()
