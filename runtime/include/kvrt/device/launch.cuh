//===- launch.cuh - Ordering attention kernels in their stream -*- CUDA -*-===//
//
// On sm_90 and newer kvrt launches attention kernels and its merge kernel as
// programmatic dependent launches (runtime/lib/SplitK.cu): the GPU may
// schedule a kernel's blocks before the stream's previous kernel has
// finished, so their launch overlaps its last blocks instead of following
// them. A kernel launched that way must not read what earlier work wrote
// (queries, the cache, the page tables) nor write what it reads (outputs,
// the split workspace) before waitForPrecedingKernels returns; the device
// templates (pagedAttention and its relatives) call it first thing. A
// kernel may call allowDependentLaunch as soon as it likes: it only lets the
// next kernel's blocks be scheduled, never lets them past their wait.
//
// Both are no-ops below sm_90 and in kernels not launched that way.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_LAUNCH_CUH
#define KVRT_DEVICE_LAUNCH_CUH

namespace kvrt::device {

/// Waits until the kernels this one depends on have completed and their
/// memory operations are visible (griddepcontrol.wait).
__device__ __forceinline__ void waitForPrecedingKernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/// Lets the stream's next kernel, when it is a programmatic dependent
/// launch, be scheduled once every block of this grid has called this or
/// exited (griddepcontrol.launch_dependents).
__device__ __forceinline__ void allowDependentLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_LAUNCH_CUH
