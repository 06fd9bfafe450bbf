"""on_error sees every error that reached the client (issue 20): the
server's (a statement's error, a FATAL) and the proxy's own (a plugin's
denial, the rate limit, statement pooling's refusal of a transaction block,
query_timeout, idle transaction timeout, the pool's wait timeout), each
exactly once, with its SQLSTATE and
message, in every pooling mode, simple and extended protocol, plain and TLS.

The plugin is tests/plugins/errlog.wat: its on_error logs
"on_error <SQLSTATE> <message>"; loaded twice, as "gate" (config
{"deny": true}: it refuses user evil and statements starting with D) and
"watch" (only listens), so a plugin's denial is seen by the other plugin's
on_error, and by its own (the decision: every error the client got,
whoever made it)."""

import json
import re
import time

import psycopg
import pytest

from conftest import DEFAULT_USERS

from test_plugins import connect, plugin, psql, sample, start, wasm


def errlog(tmp_path):
    path = wasm(tmp_path, "errlog")
    return [plugin("gate", path, config={"deny": True}), plugin("watch", path)]


def seen(p, name, sqlstate, message):
    """How many times plugin name's on_error logged this error."""
    pat = rf"plugin {name}: on_error {sqlstate} {re.escape(message)}"
    return len(re.findall(pat, p.log()))


def settle(p, sqlstate, message, n=1, timeout=5.0):
    """Waits until watch has logged the error n times (then a little more, so
    that a second, unwanted copy would show), returns the count."""
    deadline = time.monotonic() + timeout
    while seen(p, "watch", sqlstate, message) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return seen(p, "watch", sqlstate, message)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_on_error_sees_server_errors_and_plugin_denials_once(pg, proxy, config, tmp_path, cert,
                                                            mode, use_tls):
    """A server error (22012) and a plugin's denial (42501, in the simple and
    the extended protocol) reach both plugins' on_error once each; a login
    refused by a plugin (28000, a FATAL) too; a failed password (before the
    client logged in) reaches no on_error."""
    users = DEFAULT_USERS + [{"name": "evil", "password": "evil-pw"}]
    p = start(proxy, config, errlog(tmp_path), mode=mode, tls=cert if use_tls else None,
              users=users)
    with connect(p, use_tls) as c:
        for prepare in (False, True):
            with pytest.raises(psycopg.errors.DivisionByZero):
                c.execute("SELECT 1/0", prepare=prepare)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="denied by errlog"):
                c.execute("DROP TABLE IF EXISTS nothing_here", prepare=prepare)
        assert c.execute("SELECT 40 + 2").fetchone() == (42,)
    with pytest.raises(psycopg.OperationalError, match="no evil allowed"):
        connect(p, use_tls, user="evil", password="evil-pw")
    with pytest.raises(psycopg.OperationalError):
        connect(p, use_tls, password="wrong-password")
    assert settle(p, "22012", "division by zero", 2) == 2
    assert settle(p, "42501", "denied by errlog", 2) == 2
    assert settle(p, "28000", "no evil allowed") == 1
    for name in ("gate", "watch"):
        assert seen(p, name, "22012", "division by zero") == 2
        assert seen(p, name, "42501", "denied by errlog") == 2
        assert seen(p, name, "28000", "no evil allowed") == 1
    assert not re.search(r"on_error 28P01", p.log()), "an error before login is no event"


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_on_error_sees_rate_limit_refusals_once(pg, proxy, config, tmp_path, mode, prepare):
    """[rate_limit] mode = reject: each refused query (53400) reaches
    on_error once; as many events as errors the client got."""
    p = start(proxy, config, errlog(tmp_path), mode=mode,
              rate_limit={"queries_per_second": 1, "burst_size": 1, "mode": "reject"})
    refused = 0
    with p.connect() as c:
        for i in range(5):
            try:
                c.execute("SELECT %s::int", (i,), prepare=prepare)
            except psycopg.errors.lookup("53400") as e:
                refused += 1
                msg = e.diag.message_primary
    assert refused >= 3
    assert settle(p, "53400", msg, refused) == refused


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_on_error_sees_statement_pooling_refusing_a_transaction_block(pg, proxy, config,
                                                                    tmp_path, prepare):
    """Statement pooling refuses BEGIN (0A000): once per refusal."""
    p = start(proxy, config, errlog(tmp_path), mode="statement")
    msg = "transaction blocks are not allowed in statement pooling mode"
    with p.connect(autocommit=True) as c:
        for _ in range(2):
            with pytest.raises(psycopg.errors.FeatureNotSupported, match=msg):
                c.execute("BEGIN", prepare=prepare)
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert settle(p, "0A000", msg, 2) == 2


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_on_error_sees_query_timeout_once(pg, proxy, config, tmp_path, mode):
    """query_timeout_secs: the FATAL 57014 that closes the client reaches
    on_error once (the server's cancel error behind it is not sent)."""
    p = start(proxy, config, errlog(tmp_path), mode=mode, pool={"query_timeout_secs": 1})
    t0 = time.monotonic()
    with p.connect() as c:
        with pytest.raises(psycopg.OperationalError, match="query timeout"):
            c.execute("SELECT pg_sleep(5)")
    assert time.monotonic() - t0 < 4.5
    assert settle(p, "57014", "query timeout") == 1
    assert not re.search(r"on_error 57014 canceling statement", p.log())


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_on_error_sees_idle_transaction_timeout_once(pg, proxy, config, tmp_path, mode):
    """idle_transaction_timeout_secs: the FATAL 25P03 reaches on_error once."""
    p = start(proxy, config, errlog(tmp_path), mode=mode,
              pool={"idle_transaction_timeout_secs": 1})
    with p.connect() as c:
        c.execute("BEGIN")
        c.execute("SELECT 1")
        assert settle(p, "25P03", "idle transaction timeout", timeout=6) == 1
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 2")
    assert seen(p, "watch", "25P03", "idle transaction timeout") == 1


def test_on_error_sees_the_pool_wait_timeout_once(pg, proxy, config, tmp_path):
    """A client that waits query_wait_timeout_secs for a server of a full
    pool gets 53300 (the request fails, the connection stays): once."""
    p = start(proxy, config, errlog(tmp_path), mode="transaction",
              pool={"max_pool_size": 1, "query_wait_timeout_secs": 1})
    with p.connect() as holder, p.connect() as waiter:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")
        with pytest.raises(psycopg.errors.lookup("53300"), match="query_wait_timeout") as e:
            waiter.execute("SELECT 2")
        msg = e.value.diag.message_primary
        holder.execute("COMMIT")
        assert waiter.execute("SELECT 3").fetchone() == (3,)
    assert settle(p, "53300", msg) == 1


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_on_error_sees_a_servers_fatal_once(pg, proxy, config, tmp_path, mode):
    """A server terminated under a client inside a transaction: its FATAL
    (57P01), which no ReadyForQuery follows, reaches on_error once."""
    p = start(proxy, config, errlog(tmp_path), mode=mode)
    msg = "terminating connection due to administrator command"
    with p.connect(autocommit=False) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pg.su.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError, match=msg):
            for _ in range(50):
                c.execute("SELECT 1")
                time.sleep(0.1)
    assert settle(p, "57P01", msg) == 1
    assert seen(p, "gate", "57P01", msg) == 1


def test_no_plugin_no_error_events(pg, proxy, config):
    """Without [[plugins]] nothing subscribes: errors reach the client as
    before and no plugin line is logged."""
    p = proxy(config(mode="transaction"))
    with p.connect() as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1/0")
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert "on_error" not in p.log()


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_audit_logger_records_what_query_blocker_refused_through_psql(pg, proxy, config, mode):
    """The samples together: query_blocker refuses alice's DROP through
    psql and audit_logger (listed after it) writes one "error" line with the
    blocker's SQLSTATE and message; a server error gets its own line."""
    p = start(proxy, config, [
        plugin("query_blocker", sample("query_blocker")),
        plugin("audit_logger", sample("audit_logger"), config={"events": ["error"]}),
    ], mode=mode)
    r = psql(p, "DROP TABLE IF EXISTS never_dropped")
    assert r.returncode != 0 and "DROP" in r.stderr, r.stderr
    r = psql(p, "SELECT 1/0")
    assert r.returncode != 0 and "division by zero" in r.stderr, r.stderr

    def errors():
        return [json.loads(m) for m in
                re.findall(r"plugin audit_logger: (\{.*\})$", p.log(), re.M)]
    for _ in range(50):
        if len(errors()) >= 2:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    lines = errors()
    assert [x["event"] for x in lines] == ["error", "error"], lines
    assert lines[0]["sqlstate"] == "42501" and "DROP" in lines[0]["message"], lines
    assert lines[1]["sqlstate"] == "22012" and lines[1]["message"] == "division by zero", lines


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_a_denial_behind_a_running_statement_is_seen_once(pg, proxy, config, tmp_path, mode):
    """psycopg's pipeline mode: a denied statement queued behind one the
    server is still running (session pooling holds the refusal until the
    server owes the client nothing, then judges it again) reaches on_error
    once; the statement before it completes, the connection goes on."""
    p = start(proxy, config, errlog(tmp_path), mode=mode)
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="denied by errlog"):
            with c.pipeline() as pl:
                first = c.execute("SELECT pg_sleep(0.3), 7")
                pl.sync()
                c.execute("DROP TABLE IF EXISTS nothing_here")
        assert first.fetchone()[1] == 7
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert settle(p, "42501", "denied by errlog") == 1
    assert seen(p, "gate", "42501", "denied by errlog") == 1


@pytest.mark.parametrize("mode", ["session", "transaction"])
@pytest.mark.parametrize("first", ["read", "write"])
def test_a_denial_inside_one_pipelined_batch_closes_the_client_and_no_answer_goes_astray(
        pg, proxy, config, tmp_path, mode, first):
    """One batch (no Sync between): the first statement went to the server,
    the second is refused by the plugin. The server would answer the first
    (and end its implicit transaction) only at the batch's Sync, so an error
    sent at once would come before that answer and leave it to the next
    query, and a Sync sent on would commit what PostgreSQL rolls back. The
    proxy closes the client with the plugin's SQLSTATE and message instead:
    the write is rolled back, the next client gets its own answers, and the
    server's open batch is not handed to anyone."""
    with pg.superuser(dbname="appdb") as su:
        su.execute("DROP TABLE IF EXISTS h20_batch")
        su.execute("CREATE TABLE h20_batch (x int)")
        su.execute("GRANT ALL ON h20_batch TO PUBLIC")
    p = start(proxy, config, errlog(tmp_path), mode=mode)
    c = p.connect()
    # psycopg's pipeline reports a FATAL that ends the connection as "server
    # closed the connection unexpectedly", as it does for PostgreSQL's own
    # (pg_terminate_backend inside a pipeline), as an OperationalError or,
    # when the close is seen at the pipeline's exit, a DatabaseError: the
    # reason is in the log, and the connection must be gone (a refusal that
    # kept it would raise InsufficientPrivilege and leave it usable)
    with pytest.raises(psycopg.DatabaseError):
        with c.pipeline():
            if first == "read":
                c.execute("SELECT pg_sleep(0.3), 7")
            else:
                c.execute("INSERT INTO h20_batch VALUES (1)")
            c.execute("DROP TABLE IF EXISTS nothing_here")
    assert c.closed or c.broken
    c.close()
    assert p.wait_log(r"closing: denied by errlog \(inside an extended-protocol batch whose "
                      r"earlier statements already went to the server.*\(42501\)")
    with pg.superuser(dbname="appdb") as su:
        assert su.execute("SELECT count(*) FROM h20_batch").fetchone() == (0,), \
            "the batch's write was not committed"
    # every later client gets its own answers (transaction pooling: from
    # whichever server the pool hands it)
    for i in range(4):
        with p.connect() as n:
            assert n.execute("SELECT %s::int", (i,)).fetchone() == (i,)
            with n.pipeline():
                cur = n.execute("SELECT %s::int + 1", (i,))
            assert cur.fetchone() == (i + 1,)
