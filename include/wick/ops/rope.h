// Rotary position embedding on [batch, seq, heads, head_dim] query/key tensors.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

enum class RopeStyle {
  half_split,   // rotates pairs (i, i + d/2): Llama/Qwen in Hugging Face layout ("rotate_half")
  interleaved,  // rotates pairs (2i, 2i + 1): the original GPT-J/Meta layout
};

struct RopeOptions {
  double theta = 10000.0;
  RopeStyle style = RopeStyle::half_split;
  // Position of token s is position_offset + s, unless `positions` (i32/i64 [seq] or [batch, seq]) is given.
  int64_t position_offset = 0;
  Tensor positions;
  // Rotates the first rotary_dims of head_dim (0 = all). Must be even.
  int64_t rotary_dims = 0;
};

Tensor rope(const Tensor& x, const RopeOptions& options = {});
// The backward of a rotation is the inverse rotation.
Tensor rope_backward(const Tensor& dy, const RopeOptions& options = {});
// The same, written into `into` (dy's shape and dtype: a block of a wider tensor, say), which it returns.
Tensor rope_backward(const Tensor& dy, const RopeOptions& options, const Tensor& into);

}  // namespace wick::ops
