#!/usr/bin/env python3
"""Lists import cycles between the source files of src/ (issue 13).

A file imports another when it names it in a `use crate::...`, `use super::...`
or `crate::a::b::` path. Module files map to paths (src/run/mod.rs is
crate::run). Prints every cycle found (strongly connected components of more
than one file) and exits 1 if there is one.
"""
import os, re, sys

root = os.path.join(os.path.dirname(__file__), "..", "src")
mods = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs") or f in ("main.rs",):
            continue
        p = os.path.join(d, f)
        rel = os.path.relpath(p, root)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib"):
            rel = rel[:-1]
        mods[tuple(rel)] = p

def resolve(path):
    """The longest module prefix of `path` that is a file."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None

edges = {m: set() for m in mods}
for m, p in mods.items():
    text = open(p).read()
    text = text.split("#[cfg(test)]")[0]  # tests may use anything
    text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))
    pkg = m if p.endswith("mod.rs") or p.endswith("lib.rs") else m[:-1]
    for use in re.findall(r"\b(crate|super)((?:::\w+)+)", text):
        head, tail = use
        parts = [x for x in tail.split("::") if x]
        base = [] if head == "crate" else list(m[:-1])
        target = resolve(base + parts)
        if target and target != m and target != ():
            edges[m].add(target)

# Tarjan
index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            out.append(comp)
sys.setrecursionlimit(10000)
for v in edges:
    if v not in index:
        strong(v)
for c in out:
    print("cycle:", " <-> ".join("::".join(x) for x in sorted(c)))
print(f"{len(mods)} files, {sum(len(e) for e in edges.values())} imports, {len(out)} cycles")
sys.exit(1 if out else 0)
