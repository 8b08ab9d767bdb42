#!/usr/bin/env python3
"""Markdown table of two runs of ab_decode.py with the libraries in
opposite orders: per shape each entry's time and cuDNN's as "first run /
second run", each entry's change against the base entry (base time /
entry time − 1: above 0 the entry is faster) and the base entry's speed
against cuDNN (cuDNN time / base time). Also ab_decode.py's helpers that
need no GPU: its --shapes parser and --rotate's copies. Standard library
only.

Usage:
  python3 bench/decode/ab_decode_table.py ORDER1.json ORDER2.json [--base NAME]
The base defaults to the first run's first library.
"""
import argparse
import json
import math
import sys

# Most copies of a shape's cache ab_decode.py --rotate keeps (the smallest
# shapes).
MAX_COPIES = 64


def rotation_copies(kv_bytes, rotate_bytes):
    """Copies of a shape's K+V that --rotate keeps: enough that the others
    hold at least `rotate_bytes` (0: no rotation, one copy), at most
    MAX_COPIES."""
    if rotate_bytes <= 0:
        return 1
    return min(MAX_COPIES, 1 + math.ceil(rotate_bytes / kv_bytes))


def rotating(fns, turn=None):
    """One call that calls fns[0], fns[1], ... in turn, one per call. Calls
    made with the same `turn` (a one-element list, the next index) share
    the turn: where each calls one copy of some data, a call of either
    reads the copy after the one the last call of any read."""
    if len(fns) == 1:
        return fns[0]
    turn = [0] if turn is None else turn

    def fn():
        index = turn[0] % len(fns)
        turn[0] = index + 1
        return fns[index]()
    return fn


def parse_shapes(text):
    """'32/8:16x4096,...' -> [(hq, hkv, B, S)] (ab_decode.py --shapes)."""
    shapes = []
    for spec in text.split(","):
        try:
            heads, size = spec.split(":")
            hq, hkv = heads.split("/")
            B, S = size.split("x")
            shape = (int(hq), int(hkv), int(B), int(S))
        except ValueError:
            raise ValueError(f"bad shape '{spec}': Hq/Hkv:BxS, e.g. "
                             "32/8:16x4096") from None
        if min(shape) < 1 or shape[0] % shape[1]:
            raise ValueError(f"bad shape '{spec}': positive sizes, Hq a "
                             "multiple of Hkv")
        shapes.append(shape)
    return shapes


def key(row):
    return (row["hq"], row["hkv"], row["B"], row["S"], row["page"])


def size(S):
    return f"{S // 1024}K" if S % 1024 == 0 else str(S)


def render(first, second, base=None):
    """The markdown lines for runs `first` and `second` (ab_decode.py's
    JSON): shapes in the first run's order; a shape either run did not
    time shows "not timed"."""
    rows = first["rows"]
    if not rows:
        return ["(no rows)"]
    names = [n for n in rows[0]["entries"] if n != "cudnn"]
    base = base or names[0]
    if base not in names:
        raise ValueError(f"no entry '{base}': entries are {names}")
    others = [n for n in names if n != base]
    later = {key(r): r for r in second["rows"]}
    lines = ["| Hq/Hkv | B × S | page | "
             + " | ".join(f"{n} ms" for n in [base] + others)
             + " | cuDNN ms | "
             + "".join(f"{n} vs {base} | " for n in others)
             + f"{base} vs cuDNN |",
             "|---|---|---|" + "---|" * (2 * len(others) + 3)]
    for row in rows:
        runs = [row, later.get(key(row))]
        head = (f"| {row['hq']}/{row['hkv']} | {row['B']} × {size(row['S'])} "
                f"| {row['page']} | ")

        def ms(run, name):
            entry = run["entries"].get(name, {}) if run else {}
            return entry.get("ms")

        names_here = [base] + others + ["cudnn"]
        if any(ms(run, n) is None for run in runs for n in names_here):
            lines.append(head + "not timed |" + " |" * (2 * len(others) + 2))
            continue
        cells = [" / ".join(f"{ms(run, n):.4f}" for run in runs)
                 for n in names_here]
        cells += [" / ".join(f"{(ms(run, base) / ms(run, n) - 1) * 100:+.1f}%"
                             for run in runs) for n in others]
        cells.append(" / ".join(f"{ms(run, 'cudnn') / ms(run, base):.3f}"
                                for run in runs))
        lines.append(head + " | ".join(cells) + " |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--base", help="the entry the others are compared with")
    args = ap.parse_args()
    with open(args.first) as f:
        first = json.load(f)
    with open(args.second) as f:
        second = json.load(f)
    try:
        print("\n".join(render(first, second, args.base)))
    except ValueError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
