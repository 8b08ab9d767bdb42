#!/bin/bash
# Session 30: the timing protocols compared (flushcmp.py), then the decode
# benchmark with its cold-L2 columns (--cold-l2), FlashInfer included.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh tree= 2>&1 | tail -3 || exit 1
stamp flushcmp
PYTHONUNBUFFERED=1 python3 bench/results/decode_ab/session30_scripts/flushcmp.py build-gpu/ab/tree $O/session30_timing_protocols_run184.json 2>&1 | tail -25
stamp bench
if [ -f .device/flashinfer/STAMP ]; then
  source bench/decode/flashinfer_env.sh || echo "FlashInfer not installed"
fi
PYTHONUNBUFFERED=1 python3 bench/decode/bench_decode.py --lib-dir build-gpu/ab/tree \
  --cold-l2 --out $O 2>&1 | tail -75
stamp done
