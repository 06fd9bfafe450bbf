"""The dashboard at / and its /api/overview, on heliosproxy and on helios-cp,
driven in real headless Chromium (Debian's chromium) over the DevTools
protocol (python3-websocket): the page loads, shows a pool a psycopg client
opened and both nodes, updates without a reload when pgbench starts, renders
statement texts as text, loads nothing from elsewhere, fits a phone screen.
Screenshots go to the test's tmp dir and to build/test-artefacts/ (kept by
CI)."""

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ALICE, APPDB, free_port, port_accepts, wait_for
from test_control_plane import ControlPlane, pgbench_cmd

try:
    import websocket  # python3-websocket (websocket-client)
except ImportError:  # a missing package fails the tests that need it, not all of them silently
    websocket = None

ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artefacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# How long a page may take to show what the proxy reports: one 2 s poll,
# plus a slow ASan build answering it.
SEEN_SECS = 15


def http(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def overview(port):
    status, body, headers = http(port, "/api/overview")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(body)


class Chromium:
    """One headless Chromium with one page, driven over the DevTools
    protocol; every network request the page makes is recorded."""

    def __init__(self, tmp_path):
        if not os.path.exists(CHROMIUM) or websocket is None:
            pytest.fail("chromium or python3-websocket not installed (make deps installs both)")
        self.port = free_port()
        self.log_path = tmp_path / "chromium.log"
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--mute-audio",
             f"--user-data-dir={tmp_path / 'chromium-profile'}",
             f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
             f"--remote-allow-origins=http://127.0.0.1:{self.port}",
             "--window-size=1280,1400", "about:blank"],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        targets = wait_for(self._pages, timeout=30, interval=0.2)
        assert targets, f"chromium has no page to drive:\n{self.log_path.read_text()[-3000:]}"
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30,
                                              origin=f"http://127.0.0.1:{self.port}")
        self.seq = 0
        self.requests = []  # URLs the page asked for
        self.events = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def _pages(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"chromium exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
                return [t for t in json.load(r) if t.get("type") == "page"]
        except OSError:
            return None

    def _event(self, msg):
        if msg.get("method") == "Network.requestWillBeSent":
            self.requests.append(msg["params"]["request"]["url"])
        self.events.append(msg)

    def call(self, method, **params):
        self.seq += 1
        mid = self.seq
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})
            self._event(msg)

    def goto(self, url):
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{url} did not load"
            self._event(json.loads(self.ws.recv()))

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, f"{expr}: {r['exceptionDetails']}"
        return r["result"].get("value")

    def wait_js(self, expr, timeout=SEEN_SECS):
        return wait_for(lambda: self.js(expr), timeout=timeout, interval=0.25)

    def table(self, table_id):
        """Rows of a table's body as lists of cell texts."""
        return self.js(f"""Array.from(document.querySelectorAll('#{table_id} tbody tr'))
            .map(tr => Array.from(tr.cells).map(td => td.textContent))""")

    def screenshot(self, tmp_path, name):
        """PNG of the whole page into the test's tmp dir and build/test-artefacts/."""
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png",
                                          captureBeyondViewport=True)["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, "not a real screenshot"
        path = tmp_path / name
        path.write_bytes(data)
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ARTEFACTS / name)
        return path

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def browser(tmp_path):
    b = Chromium(tmp_path)
    yield b
    b.close()


def admin_port(p):
    return int(p.defaults["admin_address"].rsplit(":", 1)[1])


def pool_row(b, user, db):
    for row in b.table("pools"):
        if len(row) > 2 and row[1] == db and row[2] == user:
            return row
    return None


def cell_int(text):
    return int(text.replace(",", ""))


def backend():
    return os.environ.get("HELIOS_IO_BACKEND", "io_uring")


# ---------------------------------------------------------------------------

def test_page_shows_pool_and_nodes_and_updates_when_load_starts(pg, proxy, config, browser,
                                                               tmp_path):
    p = proxy(config(mode="transaction", analytics={"enabled": True}))
    port = admin_port(p)
    with p.connect() as c:  # opens the pool alice/appdb with a real client
        c.execute("SELECT 1").fetchall()
    browser.goto(f"http://127.0.0.1:{port}/")
    assert browser.wait_js("document.body.dataset.state === 'live'"), browser.js(
        "document.getElementById('state').textContent")
    assert browser.js("document.getElementById('title').textContent").startswith("HeliosProxy")

    row = wait_for(lambda: pool_row(browser, ALICE[0], APPDB), timeout=SEEN_SECS)
    assert row, f"no pool {ALICE[0]}/{APPDB} on the page: {browser.table('pools')}"
    assert row[3] == "primary" and row[4] == "transaction", row
    nodes = {r[1]: r for r in browser.table("nodes")}
    assert set(nodes) == {"primary", "replica"}, nodes
    assert nodes["primary"][2] == f"127.0.0.1:{pg.port}" and nodes["primary"][3] == "primary"
    assert nodes["replica"][3] == "replica"
    assert wait_for(lambda: {r[1]: r[4] for r in browser.table("nodes")}
                    == {"primary": "healthy", "replica": "healthy"}, timeout=SEEN_SECS), \
        browser.table("nodes")
    assert nodes["primary"][6] == "closed", "breaker state not shown"
    before = cell_int(row[13])

    # the page polls on its own: a marker set now survives, so no reload happened
    browser.js("window.__sameDocument = 'yes'")
    polls_before = int(browser.js("document.body.dataset.polls"))
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    bench = subprocess.Popen(pgbench_cmd(pg, p.port, script, "-c", "4", "-j", "2", "-T", "30"),
                             env=pg.env(password=ALICE[1]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        grown = wait_for(lambda: cell_int(pool_row(browser, ALICE[0], APPDB)[13]) > before + 100,
                         timeout=SEEN_SECS)
        assert grown, f"queries stayed at {pool_row(browser, ALICE[0], APPDB)} under pgbench"
        # clients of the load are counted (4 pgbench clients + none other)
        assert wait_for(lambda: cell_int(browser.table("dataplanes")[0][5]) >= 4,
                        timeout=SEEN_SECS), browser.table("dataplanes")
        assert browser.js("window.__sameDocument") == "yes", "the page reloaded"
        assert int(browser.js("document.body.dataset.polls")) > polls_before
        shot = browser.screenshot(tmp_path, f"dashboard-dataplane-{backend()}.png")
    finally:
        bench.terminate()
        bench.wait(30)
    print(f"screenshot: {shot} and {ARTEFACTS / shot.name}")

    # only this origin was asked for anything
    origin = f"http://127.0.0.1:{port}/"
    assert browser.requests and all(u.startswith(origin) for u in browser.requests), \
        browser.requests

    # a phone: no sideways scroll of the page (tables scroll inside their box)
    browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844,
                 deviceScaleFactor=2, mobile=True)
    browser.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme",
                                                          "value": "dark"}])
    browser.goto(f"http://127.0.0.1:{port}/")
    assert browser.wait_js("document.body.dataset.state === 'live'")
    assert browser.js("document.documentElement.scrollWidth") <= 391, "page wider than a phone"
    assert browser.js("getComputedStyle(document.body).backgroundColor") == "rgb(21, 23, 27)", \
        "dark colour scheme not applied"
    browser.screenshot(tmp_path, f"dashboard-phone-dark-{backend()}.png")

    # the proxy goes away: the page says so instead of showing old numbers as live
    p.stop()
    assert browser.wait_js("document.body.dataset.state === 'down'", timeout=20), \
        browser.js("document.getElementById('state').textContent")
    assert "unreachable" in browser.js("document.getElementById('state').textContent")


def test_statement_texts_are_escaped_in_json_and_rendered_as_text(pg, proxy, config, browser):
    p = proxy(config(mode="transaction", analytics={"enabled": True}))
    port = admin_port(p)
    # identifiers are kept by the normaliser (constants become $n); the text
    # shown is the statement's, the identifier with its quotes doubled
    odd = ('</script><img src=x id=pwn onerror="document.title=1">'
           ' \\ "q" \u00e9\u4e2d\U0001f600 \t tab')
    quoted = '"' + odd.replace('"', '""') + '"'
    with p.connect() as c:
        for _ in range(3):
            c.execute(f"SELECT 1 AS {quoted}").fetchall()

    def found():
        qs = overview(port)["dataplanes"][0]["top_queries"]
        return [q for q in qs if q["query"].endswith(" AS " + quoted)]

    hits = wait_for(found, timeout=SEEN_SECS)
    assert hits, [q["query"] for q in overview(port)["dataplanes"][0]["top_queries"]]
    assert hits[0]["calls"] >= 3

    browser.goto(f"http://127.0.0.1:{port}/")
    texts = browser.wait_js(f"""(() => {{
        const t = Array.from(document.querySelectorAll('#queries td.sql')).map(td => td.textContent);
        return t.some(s => s.endsWith({json.dumps(' AS ' + quoted)})) ? t : null; }})()""")
    assert texts, browser.table("queries")
    assert browser.js("document.getElementById('pwn')") is None, "statement text became markup"
    assert browser.js("document.querySelectorAll('#queries img').length") == 0
    assert browser.js("document.title") != "1"


def test_page_and_assets_name_no_external_url_and_send_a_csp(proxy, config):
    p = proxy(config())
    port = admin_port(p)
    for path, ctype in [("/", "text/html"), ("/dashboard.js", "text/javascript"),
                        ("/dashboard.css", "text/css")]:
        status, body, headers = http(port, path)
        assert status == 200 and headers["Content-Type"].startswith(ctype), (path, status)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
        assert "connect-src 'self'" in csp and "unsafe" not in csp, csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        # no absolute or scheme-relative URL, no import: nothing to fetch elsewhere
        assert not re.search(r"(?i)\b(https?|wss?|ftp):|[\"'(=]\s*//|@import", body), \
            (path, re.findall(r"(?i).{30}(?:https?:|//|@import).{30}", body))
        if path == "/dashboard.js":
            assert "innerHTML" not in body and "insertAdjacentHTML" not in body
            assert "eval(" not in body and "document.write" not in body
    assert http(port, "/status")[2]["Content-Security-Policy"]  # on every answer


def test_cp_page_lists_every_dataplane_and_its_acknowledgement(pg, proxy, config, browser,
                                                               tmp_path):
    url = f"ipc://{tmp_path}/cp.sock"
    cp_admin = free_port()
    cfg = config(control_address=url, control_admin_address=f"127.0.0.1:{cp_admin}")
    from conftest import Proxy, io_backend
    tmp = Proxy(tmp_path, "heliosproxy-cp", {"io_backend": io_backend(),
                                              "listen_address": f"127.0.0.1:{free_port()}"})
    tmp.write_config(cfg)
    cp = ControlPlane(tmp_path, tmp.config_path, url, cp_admin).start()
    try:
        assert wait_for(lambda: port_accepts(cp_admin), timeout=15)
        p1 = proxy(cfg)
        p2 = proxy(cfg)
        with p1.connect() as c:
            c.execute("SELECT 1").fetchall()

        def both():
            o = overview(cp_admin)
            ids = [d["id"] for d in o["dataplanes"] if d["connected"] and d["has_report"]]
            return o if len(ids) == 2 else None

        o = wait_for(both, timeout=SEEN_SECS)
        assert o, overview(cp_admin)
        assert o["role"] == "control-plane"
        gen = o["config"]["generation"]
        assert gen >= 1 and sorted(o["config"]["acked"]) == sorted(d["id"] for d in o["dataplanes"])
        assert all(d["acked"] and d["generation"] == gen for d in o["dataplanes"])
        ids = sorted(d["id"] for d in o["dataplanes"])

        # a data plane attached to helios-cp answers for itself, with its link
        mine = overview(admin_port(p1))
        assert mine["role"] == "dataplane" and mine["control_plane"]["connected"] is True, mine
        assert [d["id"] for d in mine["dataplanes"]] == [f"{d}" for d in ids if
                                                        d.endswith(f":{p1.pid}")]
        assert mine["config"]["generation"] == gen and mine["dataplanes"][0]["acked"]
        assert [(q["database"], q["user"]) for q in mine["dataplanes"][0]["pools"]] == \
            [(APPDB, ALICE[0])]
        assert {n["name"]: n["breaker"] for n in mine["nodes"]} == {"primary": "closed",
                                                                    "replica": "closed"}

        browser.goto(f"http://127.0.0.1:{cp_admin}/")
        assert browser.wait_js("document.body.dataset.state === 'live'")
        rows = wait_for(lambda: sorted(r[0] for r in browser.table("dataplanes")) == ids
                        and browser.table("dataplanes"), timeout=SEEN_SECS)
        assert rows, browser.table("dataplanes")
        assert all(r[1] == "yes" and r[3] == "yes" and cell_int(r[2]) == gen for r in rows), rows
        assert browser.js("document.getElementById('title').textContent").startswith("helios-cp")
        assert "2 of 2 acknowledged" in browser.js(
            "document.getElementById('c-config').textContent")
        # the pool p1's client opened, reported through helios-cp
        assert wait_for(lambda: pool_row(browser, ALICE[0], APPDB), timeout=SEEN_SECS)
        # nodes as helios-cp probes them, and as each data plane sees them
        seen_by = {r[0] for r in browser.table("nodes")}
        assert seen_by == {"helios-cp", *ids}, browser.table("nodes")
        browser.screenshot(tmp_path, f"dashboard-helios-cp-{backend()}.png")

        # one data plane stops: it stays listed, as not connected
        gone = next(d["id"] for d in o["dataplanes"] if d["id"].endswith(f":{p2.pid}"))
        p2.stop()
        assert wait_for(lambda: any(r[0] == gone and r[1] == "no"
                                    for r in browser.table("dataplanes")), timeout=30), \
            browser.table("dataplanes")
    finally:
        cp.stop()
