// REQUIRES: numpy
// kv-raise-attention preserves meaning. For each exported model graph:
// ORIGINAL goes through upstream MLIR's CPU pipeline (bufferize, lower to
// LLVM) into a library; RAISED is compiled by kvcc (--raise: raise, lower kv
// ops to kvrt calls, same upstream lowering, link kvrt). Both run on the
// same random inputs (past K/V go into kvrt caches), and every result and
// every cache's contents are compared.
// RUN: rm -rf %t && mkdir -p %t
//
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ad.ll
// RUN: %shared_lib %t/ad.ll -o %t/ad.so
// RUN: kvcc --raise %kvcc_src/examples/models/llama_attention_decode.mlir -o %t/ad | FileCheck %s --check-prefix=KVCC
// KVCC: kvcc: {{.*}}llama_attention_decode.mlir -> {{.*}} (target cpu, model graph)
// KVCC: entry llama_attention_decode: {{[0-9]+}} ops, 1 kv.attention, 1 kv.append, 1 cache arguments
// KVCC: built {{.*}}libllama_attention_decode.so
// RUN: FileCheck %s --check-prefix=HEADER < %t/ad/llama_attention_decode.h
// HEADER: typedef struct {
// HEADER: } kvcc_memref_f32_3d;
// HEADER: ///   cache0: kvrt cache, 8 kv heads x 128 f32, page 16, capacity 4096; replaces past K/V arguments #6, #7 and updated K/V results #1, #2
// HEADER: void _mlir_ciface_llama_attention_decode(llama_attention_decode_results *out, kvcc_memref_f32_2d *arg0, {{.*}}, kvcc_memref_i64_2d *arg5, kvrt_cache *cache0, kvcc_memref_i32_1d *seq_ids);
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_decode.mlir %t/ad/llama_attention_decode.kv.mlir %t/ad.so %t/ad/libllama_attention_decode.so %libkvrt | FileCheck %s --check-prefix=DECODE
// DECODE: result 0 [1, 1, 512]: rel_err {{.*}} ok
// DECODE: cache 0 sequence 0: 32 tokens match the returned K/V
// DECODE: PASS: 1 results and 1 caches compared, 0 failed
//
// The check can fail: a raised graph with a wrong scale is caught.
// RUN: sed -e 's/scale = 0.0883883461/scale = 0.05/' %t/ad/llama_attention_decode.kv.mlir > %t/wrong.mlir
// RUN: kvcc %t/wrong.mlir -q -o %t/wrong
// RUN: not /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_decode.mlir %t/wrong/wrong.kv.mlir %t/ad.so %t/wrong/libwrong.so %libkvrt | FileCheck %s --check-prefix=WRONG
// WRONG: result 0 [1, 1, 512]: rel_err {{.*}} FAIL
// WRONG: FAIL: 1 results and 1 caches compared, 1 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_prefill.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ap.ll
// RUN: %shared_lib %t/ap.ll -o %t/ap.so
// RUN: kvcc --raise %kvcc_src/examples/models/llama_attention_prefill.mlir -q -o %t/ap
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_prefill.mlir %t/ap/llama_attention_prefill.kv.mlir %t/ap.so %t/ap/libllama_attention_prefill.so %libkvrt | FileCheck %s --check-prefix=PREFILL
// PREFILL: result 0 [1, 13, 512]: rel_err {{.*}} ok
// PREFILL: cache 0 sequence 0: 13 tokens match the returned K/V
// PREFILL: PASS: 1 results and 1 caches compared, 0 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dd.ll
// RUN: %shared_lib %t/dd.ll -o %t/dd.so
// RUN: kvcc --raise %kvcc_src/examples/models/llama_decoder_decode.mlir -q -o %t/dd
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_decode.mlir %t/dd/llama_decoder_decode.kv.mlir %t/dd.so %t/dd/libllama_decoder_decode.so %libkvrt | FileCheck %s --check-prefix=DEC4
// DEC4: result 0 [1, 1, 256]: rel_err {{.*}} ok
// DEC4-COUNT-4: sequence 0: 10 tokens match the returned K/V
// DEC4: PASS: 1 results and 4 caches compared, 0 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_prefill.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dp.ll
// RUN: %shared_lib %t/dp.ll -o %t/dp.so
// RUN: kvcc --raise %kvcc_src/examples/models/llama_decoder_prefill.mlir -q -o %t/dp
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_prefill.mlir %t/dp/llama_decoder_prefill.kv.mlir %t/dp.so %t/dp/libllama_decoder_prefill.so %libkvrt | FileCheck %s --check-prefix=PRE4
// PRE4: result 0 [1, 9, 256]: rel_err {{.*}} ok
// PRE4-COUNT-4: sequence 0: 9 tokens match the returned K/V
// PRE4: PASS: 1 results and 4 caches compared, 0 failed
//
// repeat_kv as concatenated copies (Inputs/tiled_gqa_decode.mlir): the raised
// graph reorders query heads around kv.attention; the numbers must agree.
// RUN: kv-opt %S/Inputs/tiled_gqa_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/tg.ll
// RUN: %shared_lib %t/tg.ll -o %t/tg.so
// RUN: kvcc --raise %S/Inputs/tiled_gqa_decode.mlir -q -o %t/tg
// RUN: FileCheck %s --check-prefix=TILEDIR < %t/tg/tiled_gqa_decode.kv.mlir
// TILEDIR: tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 1, 8]
// TILEDIR: linalg.transpose {{.+}} permutation = [0, 2, 1, 3, 4]
// TILEDIR: kv.attention
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %S/Inputs/tiled_gqa_decode.mlir %t/tg/tiled_gqa_decode.kv.mlir %t/tg.so %t/tg/libtiled_gqa_decode.so %libkvrt | FileCheck %s --check-prefix=TILED
// TILED: result 0 [1, 4, 1, 8]: rel_err {{.*}} ok
// TILED: cache 0 sequence 0: 6 tokens match the returned K/V
// TILED: PASS: 1 results and 1 caches compared, 0 failed
//
// repeat_kv as a gather with constant head indices (Inputs/gather_gqa_decode.mlir).
// RUN: kv-opt %S/Inputs/gather_gqa_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ga.ll
// RUN: %shared_lib %t/ga.ll -o %t/ga.so
// RUN: kvcc --raise %S/Inputs/gather_gqa_decode.mlir -q -o %t/ga
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %S/Inputs/gather_gqa_decode.mlir %t/ga/gather_gqa_decode.kv.mlir %t/ga.so %t/ga/libgather_gqa_decode.so %libkvrt | FileCheck %s --check-prefix=GATHER
// GATHER: result 0 [1, 4, 1, 8]: rel_err {{.*}} ok
// GATHER: PASS: 1 results and 1 caches compared, 0 failed
//
// The same gather with indices [1, 0, 0, 1] is no GQA repeat: not raised.
// RUN: sed -e 's/dense<\[0, 0, 1, 1\]>/dense<[1, 0, 0, 1]>/' %S/Inputs/gather_gqa_decode.mlir > %t/bad-gather.mlir
// RUN: kv-opt %t/bad-gather.mlir --kv-raise-attention=remarks=true 2>&1 | FileCheck %s --check-prefix=BADGATHER
// BADGATHER: remark: kv-raise-attention: not raised: the key gathers kv heads in an order that is not a GQA repeat
// BADGATHER-NOT: kv.attention
//
// A batch of 2 with a padding mask: the graph derives its 4-D additive mask
// from the attention_mask argument (#21), so the mask becomes kv.attention's
// run-time mask operand. Sequence 1 is left-padded by 3 slots.
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode_padded.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/pd.ll
// RUN: %shared_lib %t/pd.ll -o %t/pd.so
// RUN: kvcc --raise %kvcc_src/examples/models/llama_decoder_decode_padded.mlir -q -o %t/pd
// RUN: FileCheck %s --check-prefix=PADIR < %t/pd/llama_decoder_decode_padded.kv.mlir
// PADIR-COUNT-2: kv.attention {{.*}} mask %{{.*}} mask tensor<2x1x10xf32>
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_decode_padded.mlir %t/pd/llama_decoder_decode_padded.kv.mlir %t/pd.so %t/pd/libllama_decoder_decode_padded.so %libkvrt --padding-mask 21 | FileCheck %s --check-prefix=PAD
// PAD: result 0 [2, 1, 256]: rel_err {{.*}} ok
// PAD-COUNT-4: sequence {{[01]}}: 10 tokens match the returned K/V
// PAD: PASS: 1 results and 4 caches compared, 0 failed
//
// The mask matters: the same raised graph without it is caught.
// RUN: sed -e 's/ mask %[0-9]*//; s/ mask tensor<[0-9x]*xf32>//' %t/pd/llama_decoder_decode_padded.kv.mlir > %t/nomask.mlir
// RUN: kvcc %t/nomask.mlir -q -o %t/nomask
// RUN: not /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_decode_padded.mlir %t/nomask/nomask.kv.mlir %t/pd.so %t/nomask/libnomask.so %libkvrt --padding-mask 21 | FileCheck %s --check-prefix=NOMASK
// NOMASK: result 0 [2, 1, 256]: rel_err {{.*}} FAIL
//
// BERT self-attention (no KV cache, so nothing is raised): kvcc still
// compiles the model graph (decomposing linalg.softmax) to the same numbers.
// RUN: kv-opt %kvcc_src/examples/models/bert_self_attention.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/bert.ll
// RUN: %shared_lib %t/bert.ll -o %t/bert.so
// RUN: kvcc --raise %kvcc_src/examples/models/bert_self_attention.mlir -q -o %t/bert 2>/dev/null
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/bert_self_attention.mlir %t/bert/bert_self_attention.kv.mlir %t/bert.so %t/bert/libbert_self_attention.so %libkvrt | FileCheck %s --check-prefix=BERT
// BERT: result 0 [1, 12, 256]: rel_err {{.*}} ok
// BERT: PASS: 1 results and 0 caches compared, 0 failed
