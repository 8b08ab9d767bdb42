#!/bin/bash
# Session 30: is base-vs-tree at the short rows the kernel, or the entry
# (env settings, position)? base@KVRT_DUMMY=1 is base's kernel with an env
# setting, as the tree@... entries have.
set -uo pipefail
O=$OUT/r; mkdir -p $O
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s"; }
stamp build
BUILD=build-gpu bash bench/prefill/build_ab_libs.sh base=.device/v29base/include tree= 2>&1 | tail -3 || exit 1
A=build-gpu/ab
S=32/8:1x4096,32/8:1x8192,32/8:1x16384,64/8:1x8192,32/8:16x4096
stamp ab1
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py \
  $A/base,$A/base@KVRT_DUMMY=1,$A/tree@KVRT_DECODE_PREFETCH=0,$A/tree \
  --pages 16 --shapes $S --rounds 5 --json $O/ab1.json 2>&1 | tail -12
stamp ab2
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py \
  $A/tree,$A/tree@KVRT_DECODE_PREFETCH=0,$A/base@KVRT_DUMMY=1,$A/base \
  --pages 16 --shapes $S --rounds 5 --json $O/ab2.json 2>&1 | tail -12
stamp ab3
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/base --pages 16 --shapes $S --rounds 3 2>&1 | tail -8
PYTHONUNBUFFERED=1 python3 bench/decode/ab_decode.py $A/tree@KVRT_DECODE_PREFETCH=0 --pages 16 --shapes $S --rounds 3 2>&1 | tail -8
stamp prof
for lib in base tree; do
  echo "-- profile $lib"
  PYTHONUNBUFFERED=1 python3 bench/decode/profile_decode.py --lib-dir $A/$lib --no-flashinfer \
    --shape 32/8:1x8192 --shape 32/8:1x4096 --shape 32/8:16x4096 --json $O/prof_$lib.json 2>&1 | tail -30
done
KVRT_DECODE_PREFETCH=0 PYTHONUNBUFFERED=1 python3 bench/decode/profile_decode.py --lib-dir $A/tree --no-flashinfer \
    --shape 32/8:1x8192 --shape 32/8:1x4096 --json $O/prof_tree0.json 2>&1 | tail -20
stamp done
