#!/bin/bash
# Session 30: the short rows with L2 evicted before each timed call
# (ab_decode.py --cold-l2): base (landed headers) vs tree (prefetch patch,
# planner's choice) vs tree with the prefetch off; base@KVRT_DUMMY=1 is
# base again, the sanity check the warm runs failed.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh base=.device/v29base/include tree= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,32/8:1x32768,64/8:1x8192,32/8:2x8192,32/8:4x4096,32/8:16x4096
stamp cold1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --cold-l2 \
  $A/base,$A/tree,$A/tree@KVRT_DECODE_PREFETCH=0,$A/base@KVRT_DUMMY=1 \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_cold_short_order1_run183.json 2>&1 | tail -24
stamp cold2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --cold-l2 \
  $A/base@KVRT_DUMMY=1,$A/tree@KVRT_DECODE_PREFETCH=0,$A/tree,$A/base \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_cold_short_order2_run183.json 2>&1 | tail -24
stamp done
