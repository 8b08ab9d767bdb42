// REQUIRES: nvcc
// nvcc compiles and links the generated CUDA (sm_90a) against kvrt; the
// library exports the C entry points. It cannot run here (no GPU):
// bench/gpu_check/ runs it on the GPU machine.
// RUN: rm -rf %t && kvcc %kvcc_src/examples/gqa_attention.mlir --target=cuda -o %t | FileCheck %s --check-prefix=KVCC
// RUN: nm -D --defined-only %t/libgqa_attention.so | FileCheck %s --check-prefix=SYMS
// RUN: FileCheck %s --check-prefix=HDR < %t/gqa_attention.h
// KVCC: compiling: {{.*}}nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -cudart shared
// KVCC: built {{.*}}libgqa_attention.so
// SYMS-DAG: T decode_step
// SYMS-DAG: T prefill
// HDR: int32_t prefill(kvrt_cache *cache0, kvrt_cache *cache1, const int32_t *seq_ids0, {{.*}}, void *out0, void *out1, void *stream);
