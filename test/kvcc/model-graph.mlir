// kvcc compiles model graphs (linalg from a front end) for the CPU whether
// or not kv-raise-attention raises their attention: BERT (no KV cache) keeps
// its attention in linalg (with a remark saying why), and its linalg.softmax
// is decomposed for the upstream lowering.
// RUN: rm -rf %t && kvcc --raise %kvcc_src/examples/models/bert_self_attention.mlir -o %t 2>&1 | FileCheck %s
// CHECK: remark: kv-raise-attention: not raised: the key transpose does not swap the last two dims
// CHECK: kvcc: {{.*}}bert_self_attention.mlir -> {{.*}} (target cpu, model graph)
// CHECK: entry bert_self_attention: {{[0-9]+}} ops, 0 kv.attention, 0 kv.append, 0 cache arguments
// CHECK: built {{.*}}libbert_self_attention.so
// RUN: nm -D --defined-only %t/libbert_self_attention.so | FileCheck %s --check-prefix=SYMS
// SYMS: T _mlir_ciface_bert_self_attention
// The CUDA target does not take model graphs yet.
// RUN: not kvcc --raise %kvcc_src/examples/models/llama_attention_decode.mlir --target=cuda -q -o %t/cuda 2>&1 | FileCheck %s --check-prefix=CUDA
// CUDA: error: '{{.*}}llama_attention_decode.mlir' mixes kv ops with other computation: such model graphs compile for --target=cpu only so far
