#!/bin/bash
# Session 30: ab_decode.py --rotate with one turn shared by the entries:
# the landed kernel twice (main, main@KVRT_DUMMY=1) and cuDNN, both orders.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh main= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,32/8:1x32768,64/8:1x4096,64/8:1x8192,64/8:1x16384,64/8:1x32768,32/8:2x8192,32/8:4x4096,32/8:16x4096,32/8:1x131072
stamp rot1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --rotate $A/main,$A/main@KVRT_DUMMY=1 \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_short_rows_rotate_order1_run187.json 2>&1 | tail -27
stamp rot2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py --rotate $A/main@KVRT_DUMMY=1,$A/main \
  --pages 16,64 --shapes $S --rounds 3 --json $O/session30_short_rows_rotate_order2_run187.json 2>&1 | tail -27
stamp done
