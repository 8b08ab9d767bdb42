#!/usr/bin/env bash
# On the GPU machine (CUDA, no LLVM/MLIR): builds kvrt and kvcc-run with
# KVCC_ENABLE_COMPILER=OFF, runs the runtime tests (GPU ones included), then
# builds every kvcc-generated CUDA program under DIR with the same nvcc
# command kvcc uses and checks it with kvcc-run against float64.
#   bench/gpu_check/run.sh [DIR] [LOG_DIR]
set -uo pipefail
dir=${1:-.device/gpu_check}
logs=${2:-${OUT:-/tmp}}
build=build-gpu
jobs=$(nproc)
arch=${CUDA_ARCH:-90a}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
cmake -S . -B "$build" -DKVCC_ENABLE_COMPILER=OFF -DCMAKE_BUILD_TYPE=Release \
  -DKVCC_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$logs/configure.log" 2>&1 ||
  { tail -30 "$logs/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" >"$logs/build.log" 2>&1 ||
  { grep -E "error" -A3 "$logs/build.log" | head -60; exit 1; }
echo "== runtime tests (GoogleTest, GPU tests included)"
ctest --test-dir "$build" --output-on-failure -j 4 2>&1 | tail -25
status=${PIPESTATUS[0]}

echo "== kvcc-generated CUDA programs"
kvrt_lib=$(cd "$build/lib" && pwd)
compile() {
  local d=$1 name
  name=$(basename "$d")
  nvcc -std=c++17 -O3 -gencode=arch=compute_$arch,code=sm_$arch -cudart shared -Xcompiler -fPIC \
    -shared -Iruntime/include "$d/$name.cu" -o "$d/lib$name.so" \
    -L"$kvrt_lib" -lkvrt "-Xlinker=-rpath,$kvrt_lib" >"$d/nvcc.log" 2>&1 ||
    { echo "nvcc failed for $name:"; head -30 "$d/nvcc.log"; }
}
export -f compile
export arch kvrt_lib
find "$dir" -mindepth 1 -maxdepth 1 -type d ! -name mlir | xargs -P "$jobs" -I{} bash -c 'compile {}'
for d in "$dir"/*/; do
  name=$(basename "$d")
  [[ $name == mlir ]] && continue
  calls=$(sed -n 's|^// kvcc-run-calls: *||p' "$dir/mlir/$name.mlir" | head -n1)
  calls=${calls:-prefill,decode_step*40}
  log="$logs/run-$name.txt"
  "$build/bin/kvcc-run" "$d/$name.kvcc" --device cuda --calls "$calls" >"$log" 2>&1 ||
    status=1
  # One line per program: the worst relative error over all its outputs.
  worst=$(grep -o 'rel_err [0-9.e+-]*' "$log" | awk '{print $2}' | sort -g | tail -1)
  bound=$(grep -o 'bound [0-9.e+-]*' "$log" | head -1 | awk '{print $2}')
  echo "-- $name ($calls): worst rel_err ${worst:-n/a} (bound ${bound:-n/a}), $(grep -c 'bit-exact' "$log") bit-exact cache checks"
  tail -1 "$log"
done

# The consumers' softmax under the previous tile's P·V in each program's
# sm_90a kernels (scripts/check_wgmma_overlap.py; the lit test
# e2e/cuda-wgmma-overlap.mlir checks the same where nvdisasm is installed).
if [[ $arch == 90a ]] && command -v cuobjdump >/dev/null && command -v nvdisasm >/dev/null; then
  echo "== SASS: softmax under P·V (warp-specialized prefill)"
  for d in "$dir"/*/; do
    name=$(basename "$d")
    [[ $name == mlir || ! -f $d/lib$name.so ]] && continue
    rm -rf "$d/sass" && mkdir -p "$d/sass"
    (cd "$d/sass" && cuobjdump -xelf all "../lib$name.so" >/dev/null) &&
      python3 scripts/check_wgmma_overlap.py --kernels kvcc_ "$d"/sass/*.cubin ||
      status=1
  done
fi
exit $status
