"""Statement rewriting through the proxy: a tenant's schema_prefix on the
corpus of tests/rewrite/corpus.txt (the rewritten statements run on the server
with the same results as the expected text run directly), [[rewrite_rules]],
failures sent as written, the cache keyed on the rewritten text, and
helioctl rewrite test."""

import re

import psycopg
import pytest

from conftest import APPDB, ROOT, helioctl

CORPUS = ROOT / "tests" / "rewrite" / "corpus.txt"

SCHEMA_SQL = """
DROP SCHEMA IF EXISTS tenant_a CASCADE;
CREATE SCHEMA tenant_a AUTHORIZATION alice;
SET ROLE alice;
CREATE TABLE tenant_a.users (id int PRIMARY KEY, name text, email text,
    active bool DEFAULT true, created timestamptz DEFAULT now());
CREATE TABLE tenant_a.orders (id int PRIMARY KEY, user_id int, total numeric,
    created timestamptz DEFAULT now());
CREATE TABLE tenant_a.archive_orders (id int, user_id int, total numeric, created timestamptz);
CREATE TABLE tenant_a.categories (id int, parent_id int, name text);
CREATE TABLE tenant_a.new_users (id int, name text, email text);
CREATE TABLE tenant_a."Mixed Case" (id int, "Name" text, active bool);
CREATE TABLE tenant_a.docs (id int, data jsonb);
CREATE TABLE tenant_a.events_p (id int, at date) PARTITION BY RANGE (at);
INSERT INTO tenant_a.users SELECT g, 'user' || g, 'u' || g || '@a', g % 2 = 0,
    '2024-01-01'::timestamptz FROM generate_series(4, 20) g;
INSERT INTO tenant_a.orders SELECT g, 4 + g % 17, g * 1.5, '2024-02-01'::timestamptz
    FROM generate_series(1, 50) g;
INSERT INTO tenant_a.categories VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 2, 'b');
INSERT INTO tenant_a.docs VALUES (1, '{"k": 1}');
INSERT INTO tenant_a."Mixed Case" VALUES (1, 'x', true);
DROP TABLE IF EXISTS public.users;
CREATE TABLE public.users (id int, name text);
INSERT INTO public.users VALUES (1, 'public-user');
DROP SEQUENCE IF EXISTS public.orders_id_seq;
CREATE SEQUENCE public.orders_id_seq;
RESET ROLE;
"""


def corpus():
    cases, name, src = [], None, None
    for line in CORPUS.read_text().splitlines():
        if line.startswith("-- "):
            name = line[3:].strip()
        elif line.startswith("IN:"):
            src = line[3:].strip()
        elif line.startswith("OUT:"):
            cases.append((name, src, line[4:].strip()))
    return cases


def runnable(src, out):
    if out in ("(failed)",):
        return False
    text = src if out == "(unchanged)" else out
    # parameters need a Bind; VACUUM and CONCURRENTLY cannot run in a transaction;
    # COPY needs the copy protocol (its rewriting is checked by the unit corpus)
    return not re.search(r"\$\d|\bVACUUM\b|CONCURRENTLY|^COPY\b", text, re.I)


def run_rolled_back(conn, sql):
    """Runs sql in a transaction that is rolled back; returns its rows (or None)."""
    cur = psycopg.ClientCursor(conn)
    cur.execute("BEGIN")
    try:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None
    finally:
        cur.execute("ROLLBACK")


@pytest.fixture
def tenant_schema(pg):
    with pg.superuser(dbname=APPDB) as su:
        su.execute(SCHEMA_SQL)
    yield
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP SCHEMA IF EXISTS tenant_a CASCADE; DROP TABLE IF EXISTS public.users;"
                   "DROP SEQUENCE IF EXISTS public.orders_id_seq")


def tenant_config(config, **extra):
    cfg = config(mode="transaction", **extra)
    cfg["tenancy"] = {"map_by": "user"}
    cfg["tenants"] = [{"id": "ta", "users": ["alice"], "schema_prefix": "tenant_a"}]
    return cfg


def test_the_corpus_runs_through_the_proxy_with_the_expected_results(proxy, config, pg,
                                                                     tenant_schema):
    cases = corpus()
    assert len(cases) >= 40, len(cases)
    p = proxy(tenant_config(config))
    ran = 0
    with p.connect() as via, psycopg.connect(pg.dsn("alice", "alice-pw"), autocommit=True) as direct:
        psycopg.ClientCursor(direct).execute("SET search_path = public")
        for name, src, out in cases:
            if not runnable(src, out):
                continue
            expected_sql = src if out == "(unchanged)" else out
            try:
                want = run_rolled_back(direct, expected_sql)
            except psycopg.Error as e:
                pytest.fail(f"{name}: the expected text does not run directly: {e}")
            try:
                got = run_rolled_back(via, src)
            except psycopg.Error as e:
                pytest.fail(f"{name}: {src!r} failed through the proxy: {e}")
            # answers that depend on the moment or the session, not the tables
            moving = re.search(r"nextval|currval|random\(|now\(|clock_|EXPLAIN|^SHOW",
                               expected_sql, re.I)
            if want is not None and not moving:
                assert sorted(map(repr, got or [])) == sorted(map(repr, want)), name
            ran += 1
    assert ran >= 40, ran
    # without the prefix the same text reads public.users
    with p.connect() as via:
        assert via.execute("SELECT name FROM users WHERE id = 4").fetchone() == ("user4",)
    with psycopg.connect(pg.dsn("alice", "alice-pw"), autocommit=True) as direct:
        assert direct.execute("SELECT name FROM users WHERE id = 1").fetchone() == ("public-user",)


def test_rules_rewrite_by_shape_and_failures_pass_as_written(proxy, config, tenant_schema):
    cfg = tenant_config(config)
    cfg["rewrite_rules"] = [{"name": "legacy", "match": "SELECT name FROM old_users WHERE id = 1",
                             "replace": "SELECT upper(name) FROM users WHERE id = $1"}]
    p = proxy(cfg)
    with p.connect() as c:
        # the constant of the incoming statement fills $1; the prefix applies after
        assert c.execute("SELECT name FROM old_users WHERE id = 7").fetchone() == ("USER7",)
        assert psycopg.ClientCursor(c).execute(
            "SELECT name FROM old_users WHERE id = 5").fetchone() == ("USER5",)
        # a statement the rewriter cannot handle goes as written (and fails or not on its own)
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SELEC broken")
    assert "rewriting failed" in p.log()
    out = helioctl(p, "rewrite", "test", "SELECT name FROM old_users WHERE id = 5", "ta").stdout
    assert out.splitlines() == ["rewritten",
                                "SELECT upper(name) FROM tenant_a.users WHERE id = 5"], out
    out = helioctl(p, "rewrite", "test", "SELECT 1").stdout
    assert out.splitlines() == ["unchanged", "SELECT 1"]
    r = helioctl(p, "rewrite", "test", "SELEC 1")
    assert r.stdout.splitlines() == ["failed", 'syntax error at or near "SELEC"'], r.stdout


def test_a_bad_rule_is_refused_naming_it(proxy, config):
    cfg = config(mode="transaction")
    cfg["rewrite_rules"] = [{"name": "oops", "match": "SELEC 1", "replace": "SELECT 2"}]
    p = proxy(cfg, wait=False)
    p.check_exit = False  # it must refuse to start
    assert p.wait(15) == 1
    assert "key 'rewrite_rules[0]' (oops): match: syntax error" in p.log()


def test_the_cache_keys_on_the_rewritten_text(proxy, config, pg, tenant_schema):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP SCHEMA IF EXISTS tenant_b CASCADE; CREATE SCHEMA tenant_b AUTHORIZATION alice;"
                   "CREATE TABLE tenant_b.users (id int, name text);"
                   "INSERT INTO tenant_b.users VALUES (1, 'b-user');"
                   "ALTER TABLE tenant_b.users OWNER TO alice")
    try:
        cfg = config(mode="transaction")
        cfg["tenancy"] = {"map_by": "startup"}
        cfg["tenants"] = [{"id": "ta", "schema_prefix": "tenant_a"},
                          {"id": "tb", "schema_prefix": "tenant_b"}]
        cfg["cache"] = {"enabled": True}
        p = proxy(cfg)
        with p.connect(options="-c helios.tenant=ta") as a, \
                p.connect(options="-c helios.tenant=tb") as b:
            for _ in range(3):
                assert psycopg.ClientCursor(a).execute(
                    "SELECT name FROM users WHERE id = 1").fetchone() is None
                assert psycopg.ClientCursor(b).execute(
                    "SELECT name FROM users WHERE id = 1").fetchone() == ("b-user",)
    finally:
        with pg.superuser(dbname=APPDB) as su:
            su.execute("DROP SCHEMA IF EXISTS tenant_b CASCADE")
