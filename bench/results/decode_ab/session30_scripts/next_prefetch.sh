#!/bin/bash
# Session 30: short-split prefetch A/B. Builds kvrt + three bench libs
# (base = landed headers, tree = prefetch patch, p9 = tree with a 9-step
# bound), then: short rows with the prefetch forced off/on, the grid
# base-vs-tree in both orders.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh base=.device/v29base/include tree= p9=.device/p9/include 2>&1 | tail -5 || exit 1
stamp short
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,32/8:1x32768,64/8:1x8192,64/8:1x16384,32/8:2x8192,32/8:4x4096
A=build-gpu/ab
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py \
  $A/tree@KVRT_DECODE_PREFETCH=0,$A/tree@KVRT_DECODE_PREFETCH=1,$A/p9@KVRT_DECODE_PREFETCH=1,$A/base,$A/tree \
  --pages 16,64 --shapes $S --rounds 5 --json $O/session30_prefetch_short_run181.json 2>&1 | tail -25
stamp grid1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/base,$A/tree --pages 16,64 \
  --json $O/session30_prefetch_grid_order1_run181.json 2>&1 | tail -30
stamp grid2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/tree,$A/base --pages 16,64 \
  --json $O/session30_prefetch_grid_order2_run181.json 2>&1 | tail -30
stamp done
