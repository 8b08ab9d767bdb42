#!/usr/bin/env bash
# Here (with the compiler): writes the GPU-check programs and compiles them
# with kvcc to CUDA sources + manifests under DIR (default .device/gpu_check),
# to be carried to the GPU machine and run there by bench/gpu_check/run.sh.
set -euo pipefail
build=${BUILD:-build}
dir=${1:-.device/gpu_check}
rm -rf "$dir"
mkdir -p "$dir/mlir"
python3 bench/gpu_check/gen_programs.py "$dir/mlir"
cp examples/*.mlir "$dir/mlir/"
for program in "$dir"/mlir/*.mlir; do
  name=$(basename "$program" .mlir)
  "$build/bin/kvcc" "$program" --target=cuda --emit=source -q -o "$dir/$name"
done
ls "$dir"
