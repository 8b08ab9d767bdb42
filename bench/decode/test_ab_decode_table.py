#!/usr/bin/env python3
"""Checks ab_decode_table.py (ab_decode.py's shape parser, --rotate's
copies and its two-run table) on JSON shaped like ab_decode.py's
(standard library only; ctest runs it as bench-ab-decode-table)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ab_decode_table import (MAX_COPIES, parse_shapes, render,  # noqa: E402
                             rotating, rotation_copies)


def run(rows):
    """ab_decode.py's JSON from (hq, hkv, B, S, page, {entry: ms or
    None}) rows; None: the entry failed its check and was not timed."""
    out = []
    for hq, hkv, B, S, page, times in rows:
        entries = {}
        for name, ms in times.items():
            entries[name] = {"err": 2.6e-4, "diff_vs_first": 0.0}
            if ms is not None:
                entries[name]["ms"] = ms
        out.append({"hq": hq, "hkv": hkv, "B": B, "S": S, "page": page,
                    "entries": entries})
    return {"device": "test", "rows": out, "failures": []}


class ParseShapesTest(unittest.TestCase):
    def test_shapes(self):
        self.assertEqual(parse_shapes("32/8:16x4096,64/8:1x131072"),
                         [(32, 8, 16, 4096), (64, 8, 1, 131072)])

    def test_bad_shapes(self):
        for text in ("32/8:16", "32:16x4096", "32/8:0x4096", "30/8:1x64",
                     "a/8:1x64", ""):
            with self.assertRaises(ValueError, msg=text):
                parse_shapes(text)


class RotationTest(unittest.TestCase):
    def test_copies_cover_the_bytes_asked_for_besides_the_one_read(self):
        self.assertEqual(rotation_copies(17 << 20, 0), 1)
        # 200 MiB of others at 17 MiB a copy: 12 others, 13 in all.
        self.assertEqual(rotation_copies(17 << 20, 200 << 20), 13)
        self.assertEqual(rotation_copies(50 << 20, 200 << 20), 5)
        # A copy at least as large as the bytes asked for: one other.
        self.assertEqual(rotation_copies(256 << 20, 200 << 20), 2)
        self.assertEqual(rotation_copies(1 << 10, 200 << 20), MAX_COPIES)

    def test_rotating_calls_each_in_turn(self):
        calls = []
        fn = rotating([lambda i=i: calls.append(i) or i for i in range(3)])
        self.assertEqual([fn() for _ in range(7)], [0, 1, 2, 0, 1, 2, 0])
        self.assertEqual(calls, [0, 1, 2, 0, 1, 2, 0])

        turn = [0]
        a = rotating([lambda: "a0", lambda: "a1", lambda: "a2"], turn)
        b = rotating([lambda: "b0", lambda: "b1", lambda: "b2"], turn)
        self.assertEqual([a(), a(), b(), b(), a()],
                         ["a0", "a1", "b2", "b0", "a1"])

        def single():
            return 5
        self.assertIs(rotating([single]), single)


class RenderTest(unittest.TestCase):
    def test_two_orders(self):
        first = run([(32, 8, 16, 4096, 16,
                      {"base": 0.0680, "tree": 0.0692, "cudnn": 0.0658}),
                     (64, 8, 1, 100, 16,
                      {"base": 0.0400, "tree": 0.0400, "cudnn": 0.0404})])
        # The second run lists the libraries the other way round, and its
        # shapes in another order.
        second = run([(64, 8, 1, 100, 16,
                       {"tree": 0.0410, "base": 0.0401, "cudnn": 0.0406}),
                      (32, 8, 16, 4096, 16,
                       {"tree": 0.0693, "base": 0.0680, "cudnn": 0.0659})])
        lines = render(first, second)
        self.assertEqual(lines[0], "| Hq/Hkv | B × S | page | base ms | "
                         "tree ms | cuDNN ms | tree vs base | base vs cuDNN |")
        self.assertEqual(lines[1], "|---|---|---|---|---|---|---|---|")
        self.assertEqual(lines[2], "| 32/8 | 16 × 4K | 16 | 0.0680 / 0.0680 | "
                         "0.0692 / 0.0693 | 0.0658 / 0.0659 | -1.7% / -1.9% "
                         "| 0.968 / 0.969 |")
        self.assertEqual(lines[3], "| 64/8 | 1 × 100 | 16 | 0.0400 / 0.0401 | "
                         "0.0400 / 0.0410 | 0.0404 / 0.0406 | +0.0% / -2.2% "
                         "| 1.010 / 1.012 |")
        # Against another base entry.
        self.assertIn("base vs tree", render(first, second, "tree")[0])

    def test_untimed_and_missing_shapes(self):
        first = run([(32, 8, 1, 1024, 16,
                      {"base": 0.01, "tree": None, "cudnn": 0.01}),
                     (32, 8, 2, 1024, 64,
                      {"base": 0.01, "tree": 0.01, "cudnn": 0.01})])
        second = run([(32, 8, 1, 1024, 16,
                       {"base": 0.01, "tree": 0.01, "cudnn": 0.01})])
        lines = render(first, second)
        self.assertEqual(lines[2], "| 32/8 | 1 × 1K | 16 | not timed | | | | |")
        self.assertEqual(lines[3], "| 32/8 | 2 × 1K | 64 | not timed | | | | |")
        self.assertEqual(len(lines[2].split("|")), len(lines[0].split("|")))

    def test_unknown_base(self):
        first = run([(32, 8, 1, 1024, 16, {"base": 0.01, "cudnn": 0.01})])
        with self.assertRaises(ValueError):
            render(first, first, "nope")

    def test_command_line(self):
        first = run([(32, 8, 1, 1024, 16,
                      {"base": 0.02, "tree": 0.01, "cudnn": 0.02})])
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i in range(2):
                paths.append(os.path.join(tmp, f"ab{i}.json"))
                with open(paths[-1], "w") as f:
                    json.dump(first, f)
            script = os.path.join(HERE, "ab_decode_table.py")
            out = subprocess.run([sys.executable, script] + paths,
                                 capture_output=True, text=True, check=True)
            self.assertIn("| +100.0% / +100.0% |", out.stdout)
            bad = subprocess.run([sys.executable, script] + paths
                                 + ["--base", "nope"], capture_output=True,
                                 text=True)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("no entry 'nope'", bad.stderr)


if __name__ == "__main__":
    unittest.main()
