#!/bin/bash
# Session 30: ab_decode.py --rotate (each call reads a copy of the cache the
# calls before it did not): the short rows and a few grid rows, landed
# headers (base, twice) against the prefetch patch (tree), both orders.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh base=.device/v29base/include tree= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,32/8:1x32768,64/8:1x4096,64/8:1x8192,64/8:1x16384,32/8:2x8192,32/8:4x4096,32/8:16x4096,32/8:1x131072
stamp rot1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --rotate \
  $A/base,$A/tree,$A/base@KVRT_DUMMY=1 \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_rotate_order1_run186.json 2>&1 | tail -26
stamp rot2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --rotate \
  $A/base@KVRT_DUMMY=1,$A/tree,$A/base \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_rotate_order2_run186.json 2>&1 | tail -26
stamp done
