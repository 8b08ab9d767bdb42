// kv-raise-attention on graphs exported from Hugging Face transformers by
// torch-mlir (examples/export/export_models.py).
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_decode.mlir --kv-raise-attention | FileCheck %s --check-prefix=DECODE
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_prefill.mlir --kv-raise-attention="capacity=8192 page-size=64" | FileCheck %s --check-prefix=PREFILL
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode.mlir --kv-raise-attention | FileCheck %s --check-prefix=DEC4
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_prefill.mlir --kv-raise-attention | FileCheck %s --check-prefix=PRE4
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode_padded.mlir --kv-raise-attention | FileCheck %s --check-prefix=PAD
// RUN: kv-opt %kvcc_src/examples/models/bert_self_attention.mlir --kv-raise-attention=remarks=true 2>&1 | FileCheck %s --check-prefix=BERT

// Llama-3 attention block, GQA 32/8, d = 128, decode with 31 past tokens:
// the past K/V arguments (tensor<1x8x31x128xf32>) and the returned updated
// caches are replaced by one cache handle and the sequence ids.
// DECODE-LABEL: func.func @llama_attention_decode
// DECODE-SAME: %[[X:[^:]+]]: tensor<1x1x512xf32>, %[[POS:[^:]+]]: tensor<1x1xi64>,
// DECODE-SAME: %[[CACHE:[^:]+]]: !kv.cache<heads = 8, dim = 128, f32, capacity = 4096, #kv.paged<page = 16>> {kv.replaced_args = array<i64: 6, 7>, kv.replaced_results = array<i64: 1, 2>}, %[[SEQS:[^:]+]]: tensor<1xi32> {kv.seq_ids}) -> tensor<1x1x512xf32>
// DECODE-NOT: tensor<1x8x31x128xf32>
// DECODE: %[[K:.+]] = linalg.transpose ins(%{{.+}} : tensor<1x8x1x128xf32>) outs(%{{.+}} : tensor<1x1x8x128xf32>) permutation = [0, 2, 1, 3]
// DECODE: %[[V:.+]] = linalg.transpose ins(%{{.+}} : tensor<1x8x1x128xf32>) outs(%{{.+}} : tensor<1x1x8x128xf32>) permutation = [0, 2, 1, 3]
// DECODE: kv.append %[[K]], %[[V]] into %[[CACHE]][%[[SEQS]]]
// DECODE: %[[Q:.+]] = linalg.transpose ins(%{{.+}} : tensor<1x32x1x128xf32>) outs(%{{.+}} : tensor<1x1x32x128xf32>) permutation = [0, 2, 1, 3]
// DECODE: %[[O:.+]] = kv.attention %[[Q]], %[[CACHE]][%[[SEQS]]] {scale = 0.0883883461 : f32}
// DECODE: linalg.transpose ins(%[[O]] : tensor<1x1x32x128xf32>) outs(%{{.+}} : tensor<1x32x1x128xf32>) permutation = [0, 2, 1, 3]
// DECODE-NOT: linalg.batch_matmul
// DECODE-NOT: math.exp
// DECODE-NOT: tensor.concat dim(2)
// DECODE: return %{{.+}} : tensor<1x1x512xf32>

// Causal prefill of 13 tokens; the mask built from positions in the graph
// is evaluated and found causal.
// PREFILL-LABEL: func.func @llama_attention_prefill
// PREFILL-SAME: !kv.cache<heads = 8, dim = 128, f32, capacity = 8192, #kv.paged<page = 64>>
// PREFILL-SAME: -> tensor<1x13x512xf32>
// PREFILL: kv.append %{{.+}}, %{{.+}} into %{{.+}} : tensor<1x13x8x128xf32>, tensor<1x13x8x128xf32>
// PREFILL: kv.attention %{{.+}} {causal, scale = 0.0883883461 : f32} : tensor<1x13x32x128xf32>
// PREFILL-NOT: linalg.batch_matmul
// PREFILL-NOT: arith.select

// Four layers: four caches, in layer order, and one seq-ids argument.
// DEC4-LABEL: func.func @llama_decoder_decode
// DEC4-SAME: %[[C0:[^:]+]]: !kv.cache<heads = 2, dim = 32, f32, capacity = 4096, #kv.paged<page = 16>> {kv.replaced_args = array<i64: 39, 40>, kv.replaced_results = array<i64: 1, 2>},
// DEC4-SAME: %[[C1:[^:]+]]: !kv.cache<{{[^>]+}}>> {kv.replaced_args = array<i64: 41, 42>, kv.replaced_results = array<i64: 3, 4>},
// DEC4-SAME: %[[C2:[^:]+]]: !kv.cache<{{[^>]+}}>> {kv.replaced_args = array<i64: 43, 44>, kv.replaced_results = array<i64: 5, 6>},
// DEC4-SAME: %[[C3:[^:]+]]: !kv.cache<{{[^>]+}}>> {kv.replaced_args = array<i64: 45, 46>, kv.replaced_results = array<i64: 7, 8>},
// DEC4-SAME: %[[S:[^:]+]]: tensor<1xi32> {kv.seq_ids}) -> tensor<1x1x256xf32>
// DEC4: kv.append {{.+}} into %[[C0]][%[[S]]]
// DEC4: kv.attention {{.+}}, %[[C0]][%[[S]]] {scale = 0.176776692 : f32}
// DEC4: kv.append {{.+}} into %[[C1]][%[[S]]]
// DEC4: kv.attention {{.+}}, %[[C1]][%[[S]]]
// DEC4: kv.append {{.+}} into %[[C2]][%[[S]]]
// DEC4: kv.attention {{.+}}, %[[C2]][%[[S]]]
// DEC4: kv.append {{.+}} into %[[C3]][%[[S]]]
// DEC4: kv.attention {{.+}}, %[[C3]][%[[S]]]
// DEC4-NOT: linalg.batch_matmul

// PRE4-LABEL: func.func @llama_decoder_prefill
// PRE4-SAME: -> tensor<1x9x256xf32>
// PRE4-COUNT-4: kv.attention {{.+}} {causal, scale = 0.176776692 : f32}
// PRE4-NOT: linalg.batch_matmul

// BertSelfAttention: its padding mask (from a function argument) would be a
// run-time mask operand, but the encoder has no KV cache and reads keys
// through a [B, S, H, D] -> [B, H, D, S] permutation: left untouched, and
// the remark says why.
// BERT: remark: kv-raise-attention: not raised: the key transpose does not swap the last two dims
// BERT-NOT: kv.attention
// BERT: linalg.batch_matmul

// LlamaModel decode for a padded batch of 2: the mask derives from the
// attention_mask argument (#21, kept), and reaches each kv.attention as its
// run-time mask operand [2, 1, 10].
// PAD-LABEL: func.func @llama_decoder_decode_padded
// PAD-SAME: %arg21: tensor<2x10xi64>
// PAD-COUNT-2: kv.attention {{.+}} mask %{{.+}} {scale = 0.176776692 : f32} : tensor<2x1x8x32xf32>, !kv.cache<heads = 2, dim = 32, f32, capacity = 4096, #kv.paged<page = 16>>[tensor<2xi32>] mask tensor<2x1x10xf32>
// PAD-NOT: linalg.batch_matmul
