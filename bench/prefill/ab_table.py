#!/usr/bin/env python3
"""Markdown table of one A/B from ab_prefill.py's JSON files: the same
entries run in several orders (ab_prefill.py ... --json FILE, then again
with the entries reversed), one row per shape, each library's TFLOP/s in
every order ("584 / 579") and its relative error against float32 in the
first.

Usage: python3 bench/prefill/ab_table.py ORDER1.json ORDER2.json ...
"""
import json
import sys


def entries_of(row):
    """A shape's entries by name (ab_prefill.py's short names, 'head:6')."""
    return {e["entry"]: e for e in row["entries"]}


def table(runs):
    """The markdown lines of runs[0]'s shapes, every run's speeds per entry
    in the column of the entry's name (the order of runs[0]'s entries)."""
    names = list(runs[0]["entries"])
    for run in runs[1:]:
        if sorted(run["entries"]) != sorted(names):
            raise ValueError("the files compare different entries")
        if len(run["rows"]) != len(runs[0]["rows"]):
            raise ValueError("the files cover different shapes")
    lines = [
        "| mask | B × (prefix + tokens) | " +
        " | ".join(f"{n} TFLOP/s" for n in names) + " | " +
        " | ".join(f"{n} err" for n in names) + " |",
        "|" + "---|" * (2 + 2 * len(names)),
    ]
    for i, row in enumerate(runs[0]["rows"]):
        per_run = [entries_of(run["rows"][i]) for run in runs]
        shape = (row["B"], row["prefix"], row["tokens"], row["causal"])
        for run in runs[1:]:
            other = run["rows"][i]
            if (other["B"], other["prefix"], other["tokens"],
                    other["causal"]) != shape:
                raise ValueError(f"row {i}: the files' shapes differ")
        speeds = [" / ".join(f"{r[n]['TFLOPs']:.0f}" if "TFLOPs" in r[n]
                             else "not timed" for r in per_run)
                  for n in names]
        errors = [f"{per_run[0][n]['err']:.1e}" for n in names]
        mask = "causal" if row["causal"] else "non-causal"
        lines.append(f"| {mask} | {row['B']} × ({row['prefix']} + "
                     f"{row['tokens']}) | " + " | ".join(speeds) + " | " +
                     " | ".join(errors) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    runs = []
    for path in argv[1:]:
        try:
            with open(path) as f:
                runs.append(json.load(f))
        except (OSError, ValueError) as error:
            print(f"ab_table.py: cannot read {path}: {error}", file=sys.stderr)
            return 1
    try:
        print(table(runs))
    except ValueError as error:
        print(f"ab_table.py: {error}", file=sys.stderr)
        return 1
    except KeyError as error:
        print(f"ab_table.py: not ab_prefill.py's JSON (no key {error})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
