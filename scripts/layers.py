#!/usr/bin/env python3
"""The data plane's include graph, by module, and its cycles.

A module is a folder under dataplane/ (dataplane/conn, dataplane/pipeline/engine)
or a file directly in dataplane/ (dataplane/main.c). An edge A -> B means a file
of A includes a header of B. Calls go downward only, so the module graph must
have no cycle: the script prints every strongly connected component of more than
one module, with the includes that close it, and exits 1 when there is one.

  scripts/layers.py            check (make check runs this)
  scripts/layers.py --graph    print the module graph, one edge per line
  scripts/layers.py --private  also fail when a file outside dataplane/conn/
                               (or one of conn/'s public headers) includes a
                               private conn/ header, or struct client / struct
                               server is defined outside conn/'s private headers
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DP = "dataplane"
INCLUDE = re.compile(r'^\s*#\s*include\s+"(dataplane/[^"]+)"', re.M)


def module_of(path):
    """dataplane/conn/client.c -> dataplane/conn; dataplane/main.c -> dataplane/main"""
    d = os.path.dirname(path)
    if d == DP:
        return os.path.splitext(path)[0]
    return d


def sources():
    for base, _dirs, files in os.walk(os.path.join(ROOT, DP)):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(base, f), ROOT)


def graph():
    edges = {}  # (a, b) -> [file including, header]
    nodes = set()
    for src in sources():
        a = module_of(src)
        nodes.add(a)
        with open(os.path.join(ROOT, src), encoding="utf-8") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            b = module_of(inc)
            nodes.add(b)
            if a != b:
                edges.setdefault((a, b), []).append(f"{src} -> {inc}")
    return nodes, edges


def sccs(nodes, edges):
    """Tarjan's algorithm, iterative."""
    adj = {n: [] for n in nodes}
    for a, b in edges:
        adj[a].append(b)
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(adj[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                out.append(sorted(comp))
    return out


PRIVATE = re.compile(r"^struct (client|server) \{", re.M)
# The headers of conn/ the layers above may include; every other conn/
# header is private to conn/ (struct client and struct server live in one).
CONN_PUBLIC = {"conn.h", "conn_report.h", "kfast.h", "guc.h", "prep.h", "takeover.h"}


def private_violations():
    bad = []
    for src in sources():
        with open(os.path.join(ROOT, src), encoding="utf-8") as fh:
            text = fh.read()
        in_conn = src.startswith(DP + "/conn/")
        name = os.path.basename(src)
        for m in PRIVATE.finditer(text):
            if not in_conn or name in CONN_PUBLIC:
                bad.append(f"{src}: defines struct {m.group(1)} outside conn/'s private headers")
        public_conn_header = in_conn and name in CONN_PUBLIC
        if in_conn and not public_conn_header:
            continue
        for inc in INCLUDE.findall(text):
            if inc.startswith(DP + "/conn/") and os.path.basename(inc) not in CONN_PUBLIC:
                who = "conn/'s public header " + src if public_conn_header else src
                bad.append(f"{who}: includes {inc} (private to dataplane/conn)")
    return bad


def main(argv):
    nodes, edges = graph()
    if "--graph" in argv:
        for a, b in sorted(edges):
            print(f"{a} -> {b}  ({len(edges[(a, b)])} includes)")
        return 0
    failed = False
    for comp in sccs(nodes, edges):
        if len(comp) < 2:
            continue
        failed = True
        print(f"layers: include cycle between {len(comp)} dataplane modules: " + ", ".join(comp))
        members = set(comp)
        for (a, b), why in sorted(edges.items()):
            if a in members and b in members:
                print(f"  {a} -> {b}: " + "; ".join(why[:3]) + (" ..." if len(why) > 3 else ""))
    if "--private" in argv:
        for line in private_violations():
            failed = True
            print("layers: " + line)
    if not failed:
        print(f"layers: {len(nodes)} dataplane modules, {len(edges)} dependencies, no cycle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
