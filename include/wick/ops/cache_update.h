// Device-side positions for decoding: writing each row's new key/value at a position held in a tensor, and
// advancing such positions in place. Neither reads anything back to the host, so a decode step built from
// them can be captured once as a CUDA graph and replayed with the positions moving on.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// cache: [batch, heads, capacity, dim]; values: [batch, heads, 1, dim] of the cache's dtype; positions: i64
// [batch] on the cache's device. Row b's values go to cache[b, :, positions[b], :]. A position outside
// [0, capacity) writes nothing (the caller keeps positions in range; the device cannot report it).
void write_at_positions(const Tensor& cache, const Tensor& values, const Tensor& positions);

// t += step, in place, for a dense i64 tensor.
void increment(const Tensor& t, int64_t step = 1);

}  // namespace wick::ops
