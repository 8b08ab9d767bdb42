#!/usr/bin/env bash
# On the GPU machine, from the repository root: the benchmark libraries
# ab_prefill.py compares, one per copy of kvrt's device headers.
#   bench/prefill/build_ab_libs.sh NAME=[INCLUDE_DIR] ...
# NAME= builds against the tree's own runtime/include; NAME=DIR puts DIR (a
# copy of runtime/include with a change) first on the include path. Each
# library lands in $BUILD/ab/NAME (BUILD defaults to build-gpu) next to a
# link to $BUILD/lib/libkvrt.so, which is built first when missing. The
# libraries compile in parallel (about 90 s each on the H200 machine).
set -euo pipefail
build=${BUILD:-build-gpu}
arch=${CUDA_ARCH:-90a}
(($#)) || { echo "usage: $0 NAME=[INCLUDE_DIR] ..." >&2; exit 2; }
for spec in "$@"; do
  name=${spec%%=*}
  include=${spec#*=}
  [[ $spec == *=* && -n $name ]] || { echo "bad spec '$spec': NAME=[DIR]" >&2; exit 2; }
  [[ -z $include || -d $include ]] || { echo "no directory '$include'" >&2; exit 2; }
done
if [[ ! -f $build/lib/libkvrt.so ]]; then
  cmake -S . -B "$build" -DKVCC_ENABLE_COMPILER=OFF -DCMAKE_BUILD_TYPE=Release \
    -DKVCC_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
  cmake --build "$build" -j "$(nproc)" --target kvrt >/dev/null
fi
kvrt_lib=$(cd "$build/lib" && pwd)
pids=()
for spec in "$@"; do
  name=${spec%%=*}
  include=${spec#*=}
  out="$build/ab/$name"
  mkdir -p "$out"
  ln -sf "$kvrt_lib/libkvrt.so" "$out/libkvrt.so"
  (nvcc -O3 -std=c++17 -gencode=arch=compute_$arch,code=sm_$arch -shared \
    -Xcompiler -fPIC -cudart shared ${include:+-I"$include"} -Iruntime/include \
    -Iruntime/lib bench/decode/bench_kernels.cu -L"$kvrt_lib" -lkvrt \
    -Xlinker -rpath,"$kvrt_lib" -o "$out/libkvcc_bench.so" >"$out/nvcc.log" 2>&1 ||
    { echo "nvcc failed for $name:" >&2; grep -v C7513 "$out/nvcc.log" | head -20 >&2; exit 1; }) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
((status == 0)) && echo "built: $(printf '%s ' "${@%%=*}")in $build/ab"
exit $status
