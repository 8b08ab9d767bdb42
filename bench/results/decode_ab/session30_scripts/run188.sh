#!/bin/bash
# Session 30: the decode grid back to back and with --rotate (landed kernel
# and cuDNN in turns), pages 16 and 64: does L2 reuse move any grid shape?
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh main= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
stamp b2b
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/main --pages 16,64 \
  --json $O/session30_grid_back_to_back_run188.json 2>&1 | tail -26
stamp rotate
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/main --pages 16,64 --rotate \
  --json $O/session30_grid_rotate_run188.json 2>&1 | tail -26
stamp done
