// REQUIRES: nvcc
// ptxas keeps the asynchronous wgmma pipelines of the kernels kvcc emits
// for sm_90a: no "Potential Performance Loss" note for any of them. ptxas
// serializes every wgmma of a kernel (C7512, C7513, C7518) when a change to
// the prefill bodies leaves it short of registers or puts a wgmma operand's
// definition or a wait on a divergent path, and ignores setmaxnreg (C7508)
// when it cannot tell a kernel's entry register count; each of these
// costs the warp-specialized body far more than any benchmark's noise (a
// serialized kernel runs at a fraction of its speed). Covered: bf16 causal
// and non-causal prefill (this file) and the f16 causal prefill and decode
// kernels of examples/gqa_attention.mlir.
// RUN: rm -rf %t && mkdir -p %t
// RUN: kvcc %s --target=cuda --emit=source -q -o %t/bf16
// RUN: %ptxas_report_sm90a %t/bf16/cuda-wgmma-ptxas.cu -o %t/bf16.cubin 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BF16 --implicit-check-not="Potential Performance Loss"
// RUN: kvcc %kvcc_src/examples/gqa_attention.mlir --target=cuda --emit=source -q -o %t/f16
// RUN: %ptxas_report_sm90a %t/f16/gqa_attention.cu -o %t/f16.cubin 2>&1 \
// RUN:   | FileCheck %s --check-prefix=F16 --implicit-check-not="Potential Performance Loss"

// BF16-DAG: Compiling entry function '_Z38kvcc_attention_bf16_d128_g4_p16_causal21kvrt_attention_params' for 'sm_90a'
// BF16-DAG: Compiling entry function '_Z31kvcc_attention_bf16_d128_g4_p1621kvrt_attention_params' for 'sm_90a'
// F16-DAG: Compiling entry function '_Z37kvcc_attention_f16_d128_g4_p16_causal21kvrt_attention_params' for 'sm_90a'
// F16-DAG: Compiling entry function '_Z27kvcc_decode_f16_d128_g4_p1621kvrt_attention_params' for 'sm_90a'

!cache = !kv.cache<heads = 8, dim = 128, bf16, capacity = 4096, #kv.paged<page = 16>>

func.func @prefill(%cache: !cache, %seqs: tensor<2xi32>,
                   %q: tensor<2x64x32x128xbf16>, %k: tensor<2x64x8x128xbf16>,
                   %v: tensor<2x64x8x128xbf16>)
    -> (tensor<2x64x32x128xbf16>, tensor<2x64x32x128xbf16>) {
  kv.append %k, %v into %cache[%seqs]
      : tensor<2x64x8x128xbf16>, tensor<2x64x8x128xbf16> into !cache[tensor<2xi32>]
  %causal = kv.attention %q, %cache[%seqs] {causal}
      : tensor<2x64x32x128xbf16>, !cache[tensor<2xi32>] -> tensor<2x64x32x128xbf16>
  %full = kv.attention %q, %cache[%seqs]
      : tensor<2x64x32x128xbf16>, !cache[tensor<2xi32>] -> tensor<2x64x32x128xbf16>
  return %causal, %full : tensor<2x64x32x128xbf16>, tensor<2x64x32x128xbf16>
}
