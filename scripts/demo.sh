#!/usr/bin/env bash
# Compiles every kv program in examples/ with kvcc and runs it with kvcc-run,
# which checks each output against its own float64 reference. On a machine
# with a GPU it also compiles for CUDA and runs there.
set -euo pipefail
build=${1:-build}
bin=$build/bin
out=$build/demo
rm -rf "$out"
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  has_gpu=1
fi

status=0
for example in examples/*.mlir; do
  name=$(basename "$example" .mlir)
  # An example may name its call schedule in a `// kvcc-run-calls:` line.
  calls=$(sed -n 's|^// kvcc-run-calls: *||p' "$example" | head -n1)
  echo "=== $example (cpu)"
  "$bin/kvcc" "$example" --target=cpu -o "$out/cpu/$name"
  "$bin/kvcc-run" "$out/cpu/$name/$name.kvcc" ${calls:+--calls "$calls"} || status=1
  if ((has_gpu)); then
    echo "=== $example (cuda)"
    "$bin/kvcc" "$example" --target=cuda -o "$out/cuda/$name"
    "$bin/kvcc-run" "$out/cuda/$name/$name.kvcc" ${calls:+--calls "$calls"} || status=1
  fi
done
if ((!has_gpu)); then
  echo "(no GPU here: CUDA results are checked on the GPU machine, see bench/gpu_check/)"
fi
exit $status
