"""Session pooling runs the pipeline stages that need no server switch when
they are configured: rate limits (throttle and reject, per user and per
tenant) and query analytics; the session relay stays correct around them
(pipelined and large messages, extended batches refused whole, answers in
order)."""

import json
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, helioctl, RATE_LOW as LOW, run_for, tenants_of


def top(p):
    doc = json.loads(helioctl(p, "--json", "top").stdout)
    return [q for dp in doc["dataplanes"] for q in (dp["report"] or {}).get("queries", [])]


def test_session_client_is_throttled_by_its_tenant_rate_limit(proxy, config):
    cfg = config(mode="session")
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "rate_limit": 100}]
    cfg["rate_limit"] = {"mode": "throttle", "burst_size": 5, "max_wait_ms": 5000}
    p = proxy(cfg)
    with p.connect() as c:
        run_for(c, 0.2)  # the burst goes
        ok, refused = run_for(c, 3.0)
        assert c.execute("SELECT 41 + 1").fetchone() == (42,)  # extended protocol too
    assert refused == 0
    assert 100 * LOW <= ok / 3.0 <= 110, ok / 3.0
    t = tenants_of(p)["ta"]
    assert t.get("throttled", 0) > 0 and t.get("queries", 0) >= ok, t


def test_session_reject_answers_53400_and_the_session_goes_on(proxy, config):
    cfg = config(mode="session")
    cfg["rate_limit"] = {"queries_per_second": 100, "burst_size": 5, "mode": "reject"}
    p = proxy(cfg)
    with p.connect() as c:
        run_for(c, 0.2)
        ok, refused = run_for(c, 3.0)
        assert refused > 0 and 90 <= ok / 3.0 <= 110, (ok, refused)
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
            for _ in range(100):
                psycopg.ClientCursor(c).execute("SELECT 1")
        assert 'bucket "user:alice"' in str(e.value)
        time.sleep(0.1)
        # an extended-protocol batch is refused whole, the session goes on
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            for i in range(1000):
                c.execute("SELECT %s::int", (i,))
        time.sleep(0.1)
        assert c.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)
        # the session's own state is still there (same server all along)
        c.execute("SET application_name = 'still_me'")
        time.sleep(0.1)
        assert c.execute("SHOW application_name").fetchone() == ("still_me",)


def test_session_refusal_waits_for_earlier_answers(proxy, config):
    """A refused query pipelined behind a running one is answered after the
    running one's answers, never ahead of them; then the session goes on."""
    cfg = config(mode="session")
    cfg["rate_limit"] = {"queries_per_second": 1, "burst_size": 1, "mode": "reject"}
    p = proxy(cfg)
    c = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, password=ALICE[1])
    try:
        time.sleep(1.1)  # a full bucket: one token
        c.send_raw(pgwire.message(b"Q", pgwire.cstr("SELECT 'first' FROM pg_sleep(0.3)"))
                   + pgwire.message(b"Q", pgwire.cstr("SELECT 'second'")))
        kinds = []
        while kinds.count(b"Z") < 2:
            m = c.read_message(timeout=10)
            assert m is not None, kinds
            kinds.append(m[0])
            if m[0] == b"E":
                assert pgwire.parse_fields(m[1])["C"] == "53400"
        # the first query's rows and ReadyForQuery, then the refusal's
        assert kinds == [b"T", b"D", b"C", b"Z", b"E", b"Z"], kinds
        time.sleep(1.1)
        rows = c.query("SELECT 'after'")
        assert rows and rows[0][0] in ("after", b"after"), rows
    finally:
        c.close()


def test_session_large_and_pipelined_messages_pass_under_a_limit(proxy, config):
    cfg = config(mode="session")
    cfg["rate_limit"] = {"queries_per_second": 100000, "mode": "throttle"}
    p = proxy(cfg)
    big = "x" * (3 * 1024 * 1024)
    with p.connect() as c:
        assert c.execute("SELECT length(%s)", (big,)).fetchone() == (len(big),)
        assert c.execute(f"SELECT length('{big}')").fetchone() == (len(big),)
        with c.pipeline():
            curs = []
            for i in range(200):
                cur = c.cursor()
                cur.execute("SELECT %s::int", (i,))
                curs.append(cur)
        assert [cur.fetchone()[0] for cur in curs] == list(range(200))
        c.execute("CREATE TEMP TABLE t (a int)")
        with c.cursor().copy("COPY t FROM STDIN") as cp:
            for i in range(1000):
                cp.write_row((i,))
        assert c.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_session_throttle_holds_several_clients_to_one_bucket(proxy, config):
    cfg = config(mode="session")
    cfg["rate_limit"] = {"queries_per_second": 150, "burst_size": 5, "per_user": False,
                         "mode": "throttle", "max_wait_ms": 5000}
    p = proxy(cfg)
    res = {}

    def go(k):
        with p.connect() as c:
            res[k] = run_for(c, 3.0)[0] / 3.0
    ts = [threading.Thread(target=go, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    total = sum(res.values())
    assert 150 * LOW <= total <= 170, res
    assert min(res.values()) > 0.2 * max(res.values()), res


def test_session_queries_show_up_in_analytics(proxy, config, tmp_path):
    cfg = config(mode="session")
    cfg["analytics"] = {"enabled": True, "slow_query_threshold_ms": 150,
                        "slow_query_log": str(tmp_path / "slow.jsonl")}
    p = proxy(cfg)
    with p.connect() as c:
        for i in range(30):
            c.execute(f"SELECT {i} + 1 AS sess_n")
        for i in range(5):
            c.execute("SELECT %s::int * 3 AS sess_ext", (i,))
        for _ in range(2):
            try:
                c.execute("SELECT 1 / 0 AS sess_div")
            except psycopg.errors.DivisionByZero:
                pass
        c.execute("SELECT generate_series(1, 7) AS sess_series")
        c.execute("SELECT pg_sleep(0.2) AS sess_slow")
    qs = top(p)
    by = {q["query"]: q for q in qs}
    simple = [q for q in qs if "sess_n" in q["query"]]
    assert simple and simple[0]["calls"] == 30 and simple[0]["rows"] == 30, by.keys()
    ext = [q for q in qs if "sess_ext" in q["query"]]
    assert ext and ext[0]["calls"] == 5, by.keys()
    div = [q for q in qs if "sess_div" in q["query"]]
    assert div and div[0]["errors"] == 2, by.keys()
    series = [q for q in qs if "sess_series" in q["query"]]
    assert series and series[0]["rows"] == 7
    assert simple[0]["node"] == "primary"
    slow = (tmp_path / "slow.jsonl")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (slow.exists() and "sess_slow" in slow.read_text()):
        time.sleep(0.1)
    assert "sess_slow" in slow.read_text()


def test_session_without_stages_is_relayed_as_before(proxy, config):
    p = proxy(config(mode="session"))
    with p.connect() as c:
        c.execute("SET application_name = 'plain'")
        assert c.execute("SHOW application_name").fetchone() == ("plain",)
        assert c.execute("SELECT %s::text", ("y" * 100000,)).fetchone()[0] == "y" * 100000
    assert top(p) == []
