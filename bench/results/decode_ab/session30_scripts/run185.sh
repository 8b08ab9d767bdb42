#!/bin/bash
# Session 30: timing protocols again (flush kinds, 8 rotating copies), then
# the prefetch patch (applied in the tree) against base with the read flush.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh base=.device/v29base/include tree= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
stamp flushcmp
PYTHONUNBUFFERED=1 python3 bench/results/decode_ab/session30_scripts/flushcmp.py $A/base $O/session30_timing_protocols_run185.json 2>&1 | tail -40
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,64/8:1x8192,32/8:2x8192,32/8:4x4096,32/8:16x4096
stamp ab1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --cold-l2 \
  $A/base,$A/tree,$A/base@KVRT_DUMMY=1 \
  --pages 16 --shapes $S --rounds 3 --json $O/session30_prefetch_readflush_order1_run185.json 2>&1 | tail -11
stamp ab2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --cold-l2 \
  $A/base@KVRT_DUMMY=1,$A/tree,$A/base \
  --pages 16 --shapes $S --rounds 3 --json $O/session30_prefetch_readflush_order2_run185.json 2>&1 | tail -11
stamp done
