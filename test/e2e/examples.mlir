// Every example compiles for the CPU and passes kvcc-run (as `make demo`
// runs them), so the README's example cannot rot.
// RUN: rm -rf %t && kvcc %kvcc_src/examples/gqa_attention.mlir -q -o %t
// RUN: kvcc-run %t/gqa_attention.kvcc --calls 'prefill,decode_step*4' | FileCheck %s
// CHECK: kvcc-run: 2 caches, 2 sequences
// CHECK: PASS: 5 calls, 10 outputs checked, 0 failed
