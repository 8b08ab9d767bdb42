#!/usr/bin/env python3
"""Checks ab_table.py on JSON files shaped like ab_prefill.py's (standard
library only; ctest runs it as bench-ab-table)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "ab_table.py")


def shape(B, prefix, tokens, causal, entries):
    """One row of ab_prefill.py's JSON: entries as (name, err, TFLOP/s or
    None when the entry failed its check and was not timed)."""
    row = {"B": B, "prefix": prefix, "tokens": tokens, "causal": causal,
           "entries": []}
    for name, err, speed in entries:
        entry = {"entry": name, "err": err, "diff_vs_first": 0.0}
        if speed is not None:
            entry["ms"] = 1.0
            entry["TFLOPs"] = speed
        row["entries"].append(entry)
    return row


class AbTableTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def run_table(self, *paths):
        return subprocess.run([sys.executable, SCRIPT, *paths],
                              capture_output=True, text=True)

    def two_orders(self):
        first = {"entries": ["head:6", "new:6"], "rows": [
            shape(1, 0, 8192, False, [("head:6", 2.29e-3, 584.4),
                                      ("new:6", 2.34e-3, 604.6)]),
            shape(8, 1024, 1024, True, [("head:6", 2.24e-3, 517.0),
                                        ("new:6", 2.33e-3, None)])]}
        # The reversed run: entries in the other order within each row.
        second = {"entries": ["new:6", "head:6"], "rows": [
            shape(1, 0, 8192, False, [("new:6", 2.34e-3, 602.5),
                                      ("head:6", 2.29e-3, 579.4)]),
            shape(8, 1024, 1024, True, [("new:6", 2.33e-3, 531.0),
                                        ("head:6", 2.24e-3, 518.2)])]}
        return first, second

    def test_one_column_per_entry_with_every_order(self):
        first, second = self.two_orders()
        result = self.run_table(self.write("1.json", first),
                                self.write("2.json", second))
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0],
                         "| mask | B × (prefix + tokens) | head:6 TFLOP/s | "
                         "new:6 TFLOP/s | head:6 err | new:6 err |")
        self.assertEqual(lines[1], "|---|---|---|---|---|---|")
        # The first file's entry order; each entry's speed in both files.
        self.assertEqual(lines[2], "| non-causal | 1 × (0 + 8192) | "
                         "584 / 579 | 605 / 602 | 2.3e-03 | 2.3e-03 |")
        self.assertEqual(lines[3], "| causal | 8 × (1024 + 1024) | "
                         "517 / 518 | not timed / 531 | 2.2e-03 | 2.3e-03 |")
        self.assertEqual(len(lines), 4)

    def test_refuses_files_of_other_entries_or_shapes(self):
        first, second = self.two_orders()
        other = json.loads(json.dumps(second))
        other["entries"] = ["new:6", "old:6"]
        result = self.run_table(self.write("1.json", first),
                                self.write("2.json", other))
        self.assertEqual(result.returncode, 1)
        self.assertIn("compare different entries", result.stderr)

        fewer = json.loads(json.dumps(second))
        fewer["rows"].pop()
        result = self.run_table(self.write("1.json", first),
                                self.write("3.json", fewer))
        self.assertEqual(result.returncode, 1)
        self.assertIn("cover different shapes", result.stderr)

        moved = json.loads(json.dumps(second))
        moved["rows"][1]["tokens"] = 2048
        result = self.run_table(self.write("1.json", first),
                                self.write("4.json", moved))
        self.assertEqual(result.returncode, 1)
        self.assertIn("row 1: the files' shapes differ", result.stderr)

    def test_reports_unreadable_and_foreign_files(self):
        result = self.run_table(os.path.join(self.dir.name, "missing.json"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot read", result.stderr)
        result = self.run_table(self.write("bad.json", "{not json"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot read", result.stderr)
        result = self.run_table(self.write("other.json", {"a": 1}))
        self.assertEqual(result.returncode, 1)
        self.assertIn("not ab_prefill.py's JSON (no key 'entries')",
                      result.stderr)
        result = self.run_table()
        self.assertEqual(result.returncode, 2)
        self.assertIn("Usage", result.stderr)


if __name__ == "__main__":
    unittest.main()
