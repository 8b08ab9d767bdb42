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
# A model graph exported from Hugging Face transformers by torch-mlir: kvcc
# raises its attention and KV cache to kv ops and compiles it for the CPU;
# the original graph is compiled by the same upstream lowering without
# raising, and both run on the same random inputs.
model=examples/models/llama_decoder_decode.mlir
echo "=== $model (model graph: kvcc --raise, compared with the original)"
"$bin/kvcc" "$model" -q -o "$out/models/original"
"$bin/kvcc" --raise "$model" -o "$out/models/raised"
/usr/bin/python3 test/e2e/Inputs/compare_raised.py "$model" \
  "$out/models/raised/llama_decoder_decode.kv.mlir" \
  "$out/models/original/libllama_decoder_decode.so" \
  "$out/models/raised/libllama_decoder_decode.so" "$build/lib/libkvrt.so" || status=1

if ((!has_gpu)); then
  echo "(no GPU here: CUDA results are checked on the GPU machine, see bench/gpu_check/)"
fi
exit $status
