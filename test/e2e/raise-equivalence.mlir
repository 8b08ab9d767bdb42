// REQUIRES: numpy
// kv-raise-attention preserves meaning: each exported model graph runs
// ORIGINAL through upstream MLIR's CPU pipeline, and RAISED (kv ops lowered
// to kvrt calls) through the same pipeline with kvrt's paged cache; both get
// the same random inputs (past K/V go into the caches), and every result
// and every cache's contents are compared.
// RUN: rm -rf %t && mkdir -p %t
//
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ad.ll
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_decode.mlir --kv-raise-attention -o %t/ad-raised.mlir
// RUN: kv-opt %t/ad-raised.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),kv-lower-to-calls,%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ad-raised.ll
// RUN: %shared_lib %t/ad.ll -o %t/ad.so && %shared_lib %t/ad-raised.ll -o %t/ad-raised.so
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_decode.mlir %t/ad-raised.mlir %t/ad.so %t/ad-raised.so %libkvrt | FileCheck %s --check-prefix=DECODE
// DECODE: result 0 [1, 1, 512]: rel_err {{.*}} ok
// DECODE: cache 0 sequence 0: 32 tokens match the returned K/V
// DECODE: PASS: 1 results and 1 caches compared, 0 failed
//
// The check can fail: a raised graph with a wrong scale is caught.
// RUN: sed -e 's/scale = 0.0883883461/scale = 0.05/' %t/ad-raised.mlir > %t/ad-wrong.mlir
// RUN: kv-opt %t/ad-wrong.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),kv-lower-to-calls,%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ad-wrong.ll
// RUN: %shared_lib %t/ad-wrong.ll -o %t/ad-wrong.so
// RUN: not /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_decode.mlir %t/ad-wrong.mlir %t/ad.so %t/ad-wrong.so %libkvrt | FileCheck %s --check-prefix=WRONG
// WRONG: result 0 [1, 1, 512]: rel_err {{.*}} FAIL
// WRONG: FAIL: 1 results and 1 caches compared, 1 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_prefill.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ap.ll
// RUN: kv-opt %kvcc_src/examples/models/llama_attention_prefill.mlir --kv-raise-attention -o %t/ap-raised.mlir
// RUN: kv-opt %t/ap-raised.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),kv-lower-to-calls,%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/ap-raised.ll
// RUN: %shared_lib %t/ap.ll -o %t/ap.so && %shared_lib %t/ap-raised.ll -o %t/ap-raised.so
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_attention_prefill.mlir %t/ap-raised.mlir %t/ap.so %t/ap-raised.so %libkvrt | FileCheck %s --check-prefix=PREFILL
// PREFILL: result 0 [1, 13, 512]: rel_err {{.*}} ok
// PREFILL: cache 0 sequence 0: 13 tokens match the returned K/V
// PREFILL: PASS: 1 results and 1 caches compared, 0 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dd.ll
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_decode.mlir --kv-raise-attention -o %t/dd-raised.mlir
// RUN: kv-opt %t/dd-raised.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),kv-lower-to-calls,%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dd-raised.ll
// RUN: %shared_lib %t/dd.ll -o %t/dd.so && %shared_lib %t/dd-raised.ll -o %t/dd-raised.so
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_decode.mlir %t/dd-raised.mlir %t/dd.so %t/dd-raised.so %libkvrt | FileCheck %s --check-prefix=DEC4
// DEC4: result 0 [1, 1, 256]: rel_err {{.*}} ok
// DEC4-COUNT-4: sequence 0: 10 tokens match the returned K/V
// DEC4: PASS: 1 results and 4 caches compared, 0 failed
//
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_prefill.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dp.ll
// RUN: kv-opt %kvcc_src/examples/models/llama_decoder_prefill.mlir --kv-raise-attention -o %t/dp-raised.mlir
// RUN: kv-opt %t/dp-raised.mlir --pass-pipeline="builtin.module(func.func(llvm-request-c-wrappers),kv-lower-to-calls,%upstream_to_llvm)" | mlir-translate --mlir-to-llvmir -o %t/dp-raised.ll
// RUN: %shared_lib %t/dp.ll -o %t/dp.so && %shared_lib %t/dp-raised.ll -o %t/dp-raised.so
// RUN: /usr/bin/python3 %S/Inputs/compare_raised.py %kvcc_src/examples/models/llama_decoder_prefill.mlir %t/dp-raised.mlir %t/dp.so %t/dp-raised.so %libkvrt | FileCheck %s --check-prefix=PRE4
// PRE4: result 0 [1, 9, 256]: rel_err {{.*}} ok
// PRE4-COUNT-4: sequence 0: 9 tokens match the returned K/V
// PRE4: PASS: 1 results and 4 caches compared, 0 failed
