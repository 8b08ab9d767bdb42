// REQUIRES: nvcc
// The __launch_bounds__ of the kernels kvcc emits, per compilation target
// (kvrt/device/attention.cuh): on sm_90a the attention kernel allows the
// warp-specialized prefill body's 384-thread blocks and the decode kernel
// wide 512-thread blocks; on sm_80 the attention kernel keeps three
// 128-thread blocks (no wgmma body) and the decode kernel its wide blocks
// (the mma.sync body fits 128 registers); on sm_75, without mma.sync, the
// decode kernel allows no wide blocks (its CUDA-core body spilled 324
// bytes under them). The runtime reads the bounds of the kernel it
// launches (cudaFuncGetAttributes), so each build gets the blocks it allows.
// RUN: rm -rf %t && kvcc %kvcc_src/examples/gqa_attention.mlir --target=cuda -o %t > /dev/null
// RUN: %nvcc_ptx_for -arch=sm_90a %t/gqa_attention.cu -o - | FileCheck %s --check-prefix=SM90A
// RUN: %nvcc_ptx_for -arch=sm_80 %t/gqa_attention.cu -o - | FileCheck %s --check-prefix=SM80
// RUN: %nvcc_ptx_for -arch=sm_75 %t/gqa_attention.cu -o - | FileCheck %s --check-prefix=SM75

// SM90A-LABEL: .entry _Z37kvcc_attention_f16_d128_g4_p16_causal
// SM90A: .maxntid 384, 1, 1
// SM90A-NEXT: .minnctapersm 1
// SM90A-LABEL: .entry _Z27kvcc_decode_f16_d128_g4_p16
// SM90A: .maxntid 512, 1, 1
// SM90A-NEXT: .minnctapersm 1

// SM80-LABEL: .entry _Z37kvcc_attention_f16_d128_g4_p16_causal
// SM80: .maxntid 128, 1, 1
// SM80-NEXT: .minnctapersm 3
// SM80-LABEL: .entry _Z27kvcc_decode_f16_d128_g4_p16
// SM80: .maxntid 512, 1, 1
// SM80-NEXT: .minnctapersm 1

// SM75-LABEL: .entry _Z37kvcc_attention_f16_d128_g4_p16_causal
// SM75: .maxntid 128, 1, 1
// SM75-NEXT: .minnctapersm 3
// SM75-LABEL: .entry _Z27kvcc_decode_f16_d128_g4_p16
// SM75: .maxntid 128, 1, 1
// SM75-NOT: .minnctapersm
// SM75: {
