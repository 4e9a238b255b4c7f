#!/usr/bin/env python3
"""Module cycles in src/: each file is a module (mod.rs is its folder); an edge A -> B when A
names `crate::B...` (in a `use` or a path). Prints every strongly connected component with more
than one module and exits 1 when there is one. Usage: scripts/dev/module-cycles.py [SRC]"""
import os, re, sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib", "main"):
            rel = rel[:-1]
        mods["::".join(rel)] = open(path).read()

def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)

def target(name, path):
    # the longest known module that prefixes crate::path
    parts = path.split("::")
    for i in range(len(parts), 0, -1):
        cand = "::".join(parts[:i])
        if cand in mods:
            return cand
    return None

edges = {m: set() for m in mods}
for m, text in mods.items():
    text = strip(text)
    paths = re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", text)
    # grouped imports: use crate::{a, b::c}
    for group in re.findall(r"crate::\{([^}]*)\}", text):
        paths += [p.strip() for p in group.split(",") if p.strip()]
    # super:: paths
    parent = m.rsplit("::", 1)[0] if "::" in m else ""
    for p in re.findall(r"super::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", text):
        paths.append((parent + "::" + p) if parent else p)
    for p in paths:
        t = target(m, p)
        if t and t != m and not m.startswith(t + "::") and t != "":
            edges[m].add(t)

# Tarjan
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in mods:
    if v not in index:
        visit(v)
cycles = [sorted(c) for c in sccs if len(c) > 1]
print(f"modules: {len(mods)}, edges: {sum(len(e) for e in edges.values())}, cycles: {len(cycles)}")
for c in cycles:
    print("cycle:", " ".join(c))
sys.exit(1 if cycles else 0)
