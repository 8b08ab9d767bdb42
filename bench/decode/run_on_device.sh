#!/bin/bash
# Builds kvrt and its GPU tests, runs them, builds the benchmark's kernel
# library and runs the decode benchmark, then the causal prefill benchmark
# (bench/prefill); results land in $OUT (or bench/results when OUT is
# unset). Run from the repository root on the GPU machine. Extra arguments
# go to bench_decode.py.
set -o pipefail
OUT=${OUT:-bench/results}
BUILD=build-gpu
cmake -S . -B $BUILD -G Ninja -DKVCC_ENABLE_COMPILER=OFF -DKVCC_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build $BUILD -j16 2>&1 | tail -3 || exit 1
# kvcc-run.cuda's fake kernel (test/kvcc-run/fake_decode_cuda.cu) ignores
# num_splits, so it runs with splitting off until it honors the split-K
# contract (kvrt/device/params.h).
(cd $BUILD && ctest -j4 --output-on-failure -E kvcc-run.cuda 2>&1 | tail -8; KVRT_DECODE_SPLITS=1 ctest -R kvcc-run 2>&1 | tail -3) | tee $OUT/ctest.log
nvcc -O3 -std=c++17 -arch=sm_90a -shared -Xcompiler -fPIC -cudart shared \
  -Iruntime/include -Iruntime/lib bench/decode/bench_kernels.cu -L$BUILD/lib -lkvrt \
  -Xlinker -rpath,$PWD/$BUILD/lib -o $BUILD/lib/libkvcc_bench.so || exit 1
# FlashInfer for the decode comparison, where prepare_flashinfer.sh made
# .device/flashinfer (without it bench_decode.py records null and goes on).
if [ -f .device/flashinfer/STAMP ]; then
  source bench/decode/flashinfer_env.sh || echo "FlashInfer not installed"
fi
PYTHONUNBUFFERED=1 python3 bench/decode/bench_decode.py --lib-dir $BUILD/lib \
  --out $OUT "$@" 2>&1 | tee $OUT/bench.log
PYTHONUNBUFFERED=1 python3 bench/prefill/bench_prefill.py --lib-dir $BUILD/lib \
  --out $OUT 2>&1 | tee $OUT/prefill.log
