// A hint that tensors will be read soon, for memory-bound steps whose inputs do not depend on the work queued
// just before them (a decode step's weights, needed a few kernels later).
#pragma once

#include <vector>

#include "wick/tensor.h"

namespace wick::ops {

// On a CUDA device, starts bringing the tensors' bytes into the L2 cache and returns at once: the kernel
// issues the copies while the previous work finishes and does not hold back the work queued after it. It
// never changes a value; on the CPU (or for undefined tensors) it does nothing. All defined tensors must be
// on one device.
void prefetch(const std::vector<Tensor>& tensors);

}  // namespace wick::ops
