// REQUIRES: nvcc, nvdisasm
// In the SASS of kvcc's sm_90a attention kernels each consumer of the
// warp-specialized prefill body runs a tile's softmax while the previous
// tile's P·V runs: every exponential after the wait for S(k) (wgmma
// wait_group 1) comes before the wait for P·V(k - 1) (wait_group 0).
// ptxas 13.0 had moved that wait above the whole softmax until session 19
// (scripts/check_wgmma_overlap.py; docs/architecture.md). Kernels: the bf16
// causal and non-causal prefill of cuda-wgmma-ptxas.mlir, gqa_attention's
// f16 ones (its decode kernel has no such loop). Each of their loops takes
// Q from registers for S (kvrt's configuration since session 21). In the
// causal kernels, whose consumers take turns, all 8 of a thread's 16-byte
// output stores (two rows, four stores of 8 columns each at head_dim 128)
// run while the next item's first S is in flight (kStoreUnderNextScores,
// session 22); in the non-causal ones none do. The checker itself is checked on two abridged loops, one as ptxas had
// scheduled it, both with Q in shared memory as before session 21.
// RUN: rm -rf %t && mkdir -p %t
// RUN: kvcc %S/cuda-wgmma-ptxas.mlir --target=cuda --emit=source -q -o %t/bf16
// RUN: %ptxas_report_sm90a %t/bf16/cuda-wgmma-ptxas.cu -o %t/bf16.cubin > /dev/null 2>&1
// RUN: /usr/bin/python3 %kvcc_src/scripts/check_wgmma_overlap.py --nvdisasm %nvdisasm %t/bf16.cubin \
// RUN:   | FileCheck %s --check-prefix=BF16
// RUN: kvcc %kvcc_src/examples/gqa_attention.mlir --target=cuda --emit=source -q -o %t/f16
// RUN: %ptxas_report_sm90a %t/f16/gqa_attention.cu -o %t/f16.cubin > /dev/null 2>&1
// RUN: /usr/bin/python3 %kvcc_src/scripts/check_wgmma_overlap.py --nvdisasm %nvdisasm --kernels kvcc_ %t/f16.cubin \
// RUN:   | FileCheck %s --check-prefix=F16
// RUN: not /usr/bin/python3 %kvcc_src/scripts/check_wgmma_overlap.py --sass %S/Inputs/ws_tile_loop_hoisted.sass \
// RUN:   | FileCheck %s --check-prefix=HOISTED
// RUN: /usr/bin/python3 %kvcc_src/scripts/check_wgmma_overlap.py --sass %S/Inputs/ws_tile_loop_overlapped.sass \
// RUN:   | FileCheck %s --check-prefix=OVERLAPPED

// BF16: _Z31kvcc_attention_bf16_d128_g4_p1621kvrt_attention_params: PASS: loop of {{[0-9]+}} instructions: {{[1-9][0-9]*}} exponentials between the waits, 0 after the P·V wait; Q in registers; 0 output stores under an S
// BF16-NEXT: _Z38kvcc_attention_bf16_d128_g4_p16_causal21kvrt_attention_params: PASS: loop of {{[0-9]+}} instructions: {{[1-9][0-9]*}} exponentials between the waits, 0 after the P·V wait; Q in registers; 8 output stores under an S
// BF16-NOT: FAIL

// F16: _Z27kvcc_decode_f16_d128_g4_p1621kvrt_attention_params: no warp-specialized tile loop
// F16-NEXT: _Z37kvcc_attention_f16_d128_g4_p16_causal21kvrt_attention_params: PASS: {{.*}}, 0 after the P·V wait; Q in registers; 8 output stores under an S

// HOISTED: _Z18kvcc_attention_mma: no warp-specialized tile loop
// HOISTED-NEXT: _Z20kvcc_attention_hoisted: FAIL: loop of 10 instructions: 0 exponentials between the waits, 2 after the P·V wait; Q in shared memory

// OVERLAPPED: _Z22kvcc_attention_overlap: PASS: loop of 10 instructions: 2 exponentials between the waits, 0 after the P·V wait; Q in shared memory; 1 output stores under an S
