// cuDNN's fused attention (scaled dot-product attention through the cuDNN frontend's graph API) as one of
// attention's implementations. cuDNN is loaded at run time (libcudnn.so.9, or the file WICK_CUDNN_LIBRARY
// names), so a machine without it keeps the built-in kernels; each shape's graph is built once and cached.
// It covers what its kernels do as the op's semantics need them: bf16/f16, head_dim 64 or 128, grouped
// key/value heads, causal masks whose diagonal ends at the last key (queries that follow a cache), no
// per-sequence key lengths. The backward runs cuDNN's deterministic algorithm.
#pragma once

#include <string>

#include "wick/ops/attention.h"
#include "wick/tensor.h"

namespace wick::cudnn {

// Whether cuDNN 9 was loaded (tried once); when not, why.
bool available();
std::string unavailable_reason();

bool attention_applies(const Tensor& q, const Tensor& k, const Tensor& v,
                       const ops::AttentionOptions& options, const Tensor& out);
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
               const Tensor& out, const Tensor& lse);

bool attention_backward_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                const Tensor& dout, const ops::AttentionOptions& options, const Tensor& dq,
                                const Tensor& dk, const Tensor& dv);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

}  // namespace wick::cudnn
