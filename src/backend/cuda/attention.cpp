// Reference attention on CUDA, composed from the vendor GEMM and the fused softmax: the scores of all query
// heads that share a key/value head are one batched GEMM (the queries of a group are viewed as one tall
// matrix), the masked softmax keeps each row's log-sum-exp, and P·V is a second GEMM. It materializes the S×T
// scores, so it is the correctness reference and the fallback; the flash kernels replace it where they apply.
// Backward: P is recomputed; dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(P∘dP)), dQ = scale·dS·K,
// dK = scale·dSᵀ·Q, with the group sums falling out of the tall-matrix views.
#include <cmath>

#include "backend/cuda/kernels.h"
#include "backend/cuda/softmax.h"

namespace wick::cuda {
namespace {

struct Views {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, group;
  double scale;
  ops::SoftmaxMask mask;
};

Views views_of(const Tensor& q, const Tensor& k, const ops::AttentionOptions& options) {
  Views v{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), q.size(1) / k.size(1), 0, {}};
  v.scale = std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(v.head_dim)) : options.scale;
  v.mask.causal = options.causal;
  v.mask.causal_offset = options.query_offset >= 0 ? options.query_offset : v.kv_len - v.q_len;
  v.mask.lengths = options.kv_lengths;
  return v;
}

// [batch, q_heads, rows, cols] viewed as [batch, kv_heads, group·rows, cols] (dense input).
Tensor tall(const Tensor& t, const Views& v) {
  return t.view({v.batch, v.kv_heads, v.group * t.size(2), t.size(3)});
}

ops::GemmOptions options(bool ta, bool tb, double alpha) {
  ops::GemmOptions o;
  o.transpose_a = ta;
  o.transpose_b = tb;
  o.alpha = alpha;
  return o;
}

// P = softmax(scale·Q·Kᵀ) with masks; lse [batch, q_heads, q_len] f32.
Tensor probabilities(const Tensor& qd, const Tensor& kd, const Views& v, const Tensor& lse) {
  Tensor scores = Tensor::empty({v.batch, v.kv_heads, v.group * v.q_len, v.kv_len}, qd.dtype(), qd.device());
  cuda::gemm(tall(qd, v), kd, scores, options(false, true, v.scale));
  Tensor per_head = scores.view({v.batch, v.q_heads, v.q_len, v.kv_len});
  softmax_rows(per_head, per_head, v.mask, false, lse);
  return per_head;
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v_in, const ops::AttentionOptions& opts,
               const Tensor& out, const Tensor& lse) {
  const Views v = views_of(q, k, opts);
  const Tensor qd = q.contiguous(), kd = k.contiguous(), vd = v_in.contiguous();
  const Tensor lse_f32 =
      lse.dtype() == DType::f32 ? lse : Tensor::empty(lse.shape(), DType::f32, lse.device());
  const Tensor p = probabilities(qd, kd, v, lse_f32);
  const Tensor od = out.is_contiguous() ? out : Tensor::empty(out.shape(), out.dtype(), out.device());
  cuda::gemm(tall(p, v), vd, tall(od, v), options(false, false, 1.0));
  if (od.data_ptr() != out.data_ptr()) out.copy_(od);
  if (lse_f32.data_ptr() != lse.data_ptr()) lse.copy_(lse_f32);
}

// The saved out and lse are not needed: P is recomputed by the same softmax, and rowsum(P∘dP) equals
// rowsum(dO∘O).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v_in, const Tensor& /*out*/,
                        const Tensor& /*lse*/, const Tensor& dout, const ops::AttentionOptions& opts,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const Views v = views_of(q, k, opts);
  const Tensor qd = q.contiguous(), kd = k.contiguous(), vd = v_in.contiguous(), gd = dout.contiguous();
  const Tensor scratch_lse = Tensor::empty({v.batch, v.q_heads, v.q_len}, DType::f32, q.device());
  const Tensor p = probabilities(qd, kd, v, scratch_lse);
  // The products write dense results; strided gradients are filled from them at the end.
  auto dense = [](const Tensor& t) {
    return t.is_contiguous() ? t : Tensor::empty(t.shape(), t.dtype(), t.device());
  };
  const Tensor dqd = dense(dq), dkd = dense(dk), dvd = dense(dv);
  cuda::gemm(tall(p, v), tall(gd, v), dvd, options(true, false, 1.0));
  Tensor dp = Tensor::empty(p.shape(), p.dtype(), p.device());
  cuda::gemm(tall(gd, v), vd, tall(dp, v), options(false, true, 1.0));
  Tensor ds = Tensor::empty(p.shape(), p.dtype(), p.device());
  cuda::softmax_backward(p, dp, ds, false);
  cuda::gemm(tall(ds, v), kd, tall(dqd, v), options(false, false, v.scale));
  cuda::gemm(tall(ds, v), tall(qd, v), dkd, options(true, false, v.scale));
  for (const auto& [target, result] : {std::pair{&dq, &dqd}, {&dk, &dkd}, {&dv, &dvd}})
    if (result->data_ptr() != target->data_ptr()) target->copy_(*result);
}

}  // namespace wick::cuda
