#!/usr/bin/env python3
"""The longest functions in src/ by line count (signature to closing brace), test modules
excluded. Usage: scripts/dev/longest-fns.py [SRC] [N]"""
import os, re, sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
found = []
fn = re.compile(r"^\s*(pub(\([a-z]+\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        lines = open(path).read().split("\n")
        # stop at the unit tests
        for i, l in enumerate(lines):
            if l.startswith("#[cfg(test)]"):
                lines = lines[:i]
                break
        i = 0
        while i < len(lines):
            m = fn.match(lines[i])
            if not m:
                i += 1
                continue
            depth, started, j = 0, False, i
            while j < len(lines):
                code = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j].split("//")[0])
                depth += code.count("{") - code.count("}")
                if "{" in code:
                    started = True
                if started and depth <= 0:
                    break
                if not started and code.rstrip().endswith(";"):
                    break
                j += 1
            if started:
                found.append((j - i + 1, f"{path}:{i + 1}", m.group(6)))
            i += 1
found.sort(reverse=True)
for n, where, name in found[:top]:
    print(f"{n:5} {where} {name}")
