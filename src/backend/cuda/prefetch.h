// L2 prefetch of tensors on CUDA (prefetch.cu), behind ops::prefetch.
#pragma once

#include <vector>

#include "wick/tensor.h"

namespace wick::cuda {

// At most kMaxPrefetchTensors defined cuda tensors of one device; each one's storage extent is prefetched.
constexpr size_t kMaxPrefetchTensors = 8;
void prefetch_to_l2(const std::vector<Tensor>& tensors);

}  // namespace wick::cuda
