#!/usr/bin/env python3
"""Times kv-raise-attention on Llama decode graphs of 1 to 32 layers.

    python3 bench/raise/bench_raise.py [BUILD_DIR]

Runs `kv-opt GRAPH --kv-raise-attention --mlir-timing` several times per
graph (graphs from `examples/export/export_models.py --scaling`), takes the
median of the pass's own wall time and of the whole command (parse + pass +
print), checks every attention was raised, and writes
bench/results/raise.json and raise.md.
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"
KV_OPT = BUILD / "bin" / "kv-opt"
GRAPHS = ROOT / "bench" / "raise" / "graphs"
REPEATS = 7


def run_once(graph):
    start = time.perf_counter()
    proc = subprocess.run(
        [KV_OPT, graph, "--kv-raise-attention", "--mlir-timing"],
        capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    match = re.search(r"([0-9.]+) \(\s*[0-9.]+%\)\s+KVRaiseAttention",
                      proc.stderr)
    return wall, float(match.group(1)), proc.stdout


def main():
    rows = []
    for layers in (1, 2, 4, 8, 16, 32):
        graph = GRAPHS / f"llama_decoder_decode_{layers}l.mlir"
        text = graph.read_text()
        ops = len(re.findall(r"^\s*(?:%\S+ = )?[a-z_]+\.[a-z_.]+", text,
                             re.MULTILINE))
        walls, passes = [], []
        for _ in range(REPEATS):
            wall, pass_time, out = run_once(graph)
            walls.append(wall)
            passes.append(pass_time)
        raised = out.count("kv.attention")
        assert raised == layers, f"{graph.name}: {raised} of {layers} raised"
        assert "linalg.batch_matmul" not in out
        rows.append({
            "layers": layers, "ops": ops, "raised": raised,
            "pass_ms": 1e3 * statistics.median(passes),
            "kv_opt_ms": 1e3 * statistics.median(walls),
        })
        rows[-1]["pass_us_per_op"] = 1e3 * rows[-1]["pass_ms"] / ops
        print(rows[-1])
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    command = "python3 bench/raise/bench_raise.py build"
    (results / "raise.json").write_text(json.dumps(
        {"command": command, "repeats": REPEATS,
         "machine": "the 2-core CPU development machine", "rows": rows},
        indent=2) + "\n")
    lines = ["# kv-raise-attention on Llama decode graphs (torch-mlir exports)",
             "", f"Command: `{command}` (median of {REPEATS} runs, 2-core "
             "CPU machine).", "",
             "| layers | ops | attentions raised | pass ms | µs/op | kv-opt total ms |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layers']} | {r['ops']} | {r['raised']} | "
                     f"{r['pass_ms']:.2f} | {r['pass_us_per_op']:.2f} | "
                     f"{r['kv_opt_ms']:.1f} |")
    (results / "raise.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
