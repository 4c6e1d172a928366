// The chunked language-model-head loss, composed from gemm and the cross-entropy kernels on any device.
// Per chunk: logits = h·Wᵀ, loss sum = mean·count, dlogits = cross_entropy_backward scaled to the global
// count, dh = dlogits·W. Peak extra memory is one [chunk, V] logits block (and its gradient) instead of [N,
// V].
#include <vector>

#include "ops/check.h"
#include "wick/ops/elementwise.h"
#include "wick/ops/gemm.h"
#include "wick/ops/loss.h"

namespace wick::ops {

LinearCrossEntropy linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& targets,
                                        int64_t ignore_index, bool compute_grad, int64_t chunk_tokens) {
  constexpr std::string_view op = "linear_cross_entropy";
  check_floating(op, "hidden", hidden);
  check_floating(op, "weight", weight);
  check_rank(op, "hidden", hidden, 2);
  check_rank(op, "weight", weight, 2);
  check_same_dtype(op, {{"hidden", &hidden}, {"weight", &weight}});
  check_same_device(op, {{"hidden", &hidden}, {"weight", &weight}, {"targets", &targets}});
  check_index_dtype(op, "targets", targets);
  check_shape(op, "targets", targets, {hidden.size(0)});
  if (weight.size(1) != hidden.size(1))
    fail(op, "weight must be [vocab, {}] for hidden={}, got {}", hidden.size(1), hidden.str(), weight.str());
  if (chunk_tokens < 1) fail(op, "chunk_tokens must be >= 1, got {}", chunk_tokens);
  const int64_t vocab = weight.size(0), tokens = hidden.size(0);
  check_index_range(op, "target", targets, vocab, ignore_index);

  // Counts per chunk come from the host copy of the targets the range check already needed.
  const std::vector<int64_t> ids = targets.to_vector<int64_t>();
  int64_t counted = 0;
  for (int64_t id : ids) counted += id != ignore_index;
  const DType loss_dtype = hidden.dtype() == DType::f64 ? DType::f64 : DType::f32;
  LinearCrossEntropy result{Tensor::zeros({}, loss_dtype, hidden.device()), Tensor()};
  if (compute_grad) result.dhidden = Tensor::empty(hidden.shape(), hidden.dtype(), hidden.device());
  if (counted == 0) {
    result.loss.fill_(std::numeric_limits<double>::quiet_NaN());
    if (compute_grad) result.dhidden.fill_(0.0);
    return result;
  }
  for (int64_t start = 0; start < tokens; start += chunk_tokens) {
    const int64_t length = std::min(chunk_tokens, tokens - start);
    int64_t chunk_counted = 0;
    for (int64_t i = start; i < start + length; ++i) chunk_counted += ids[i] != ignore_index;
    const Tensor h = hidden.narrow(0, start, length);
    const Tensor t = targets.narrow(0, start, length);
    if (chunk_counted == 0) {
      if (compute_grad) result.dhidden.narrow(0, start, length).fill_(0.0);
      continue;
    }
    const Tensor logits = matmul(h, weight, false, true);
    const double share = static_cast<double>(chunk_counted) / counted;
    if (compute_grad) {
      const auto chunk = cross_entropy_with_grad(logits, t, ignore_index, share);
      result.loss = add(result.loss, scale(chunk.loss, share));
      gemm(chunk.dlogits, weight, result.dhidden.narrow(0, start, length));
    } else {
      result.loss = add(result.loss, scale(cross_entropy(logits, t, ignore_index), share));
    }
  }
  return result;
}

}  // namespace wick::ops
