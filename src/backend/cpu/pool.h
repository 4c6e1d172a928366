// Mean pooling over right-padded rows on the CPU (pool.cpp), behind ops::mean_pool.
#pragma once

#include "wick/tensor.h"

namespace wick::cpu {

// x [batch, seq, width] of any float dtype, lengths i64 [batch]; out [batch, width] f32 (f64 for f64 x).
// Sums in double.
void mean_pool(const Tensor& x, const Tensor& lengths, const Tensor& out);

}  // namespace wick::cpu
