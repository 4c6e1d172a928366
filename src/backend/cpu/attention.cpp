// Reference attention, one (batch, query head) at a time: scores = scale·Q·Kᵀ, masked softmax with its
// log-sum-exp kept, out = P·V. Query head h reads key/value head h / (q_heads / kv_heads). The backward
// recomputes P from the saved log-sum-exp, as flash attention does, so nothing S×T is kept between passes.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/blas.h"
#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

struct Geometry {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, group, query_offset;
  double scale;
  bool causal;
  std::vector<int64_t> kv_lengths;

  Geometry(const Tensor& q, const Tensor& k, const ops::AttentionOptions& options)
      : batch(q.size(0)),
        q_heads(q.size(1)),
        kv_heads(k.size(1)),
        q_len(q.size(2)),
        kv_len(k.size(2)),
        head_dim(q.size(3)),
        group(q_heads / kv_heads),
        query_offset(options.query_offset >= 0 ? options.query_offset : kv_len - q_len),
        scale(std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(q.size(3))) : options.scale),
        causal(options.causal) {
    if (options.kv_lengths.defined()) kv_lengths = options.kv_lengths.to_vector<int64_t>();
  }

  // Keys [0, visible) are seen by query i of batch b.
  int64_t visible(int64_t b, int64_t i) const {
    int64_t n = kv_len;
    if (causal) n = std::min(n, std::max<int64_t>(0, i + query_offset + 1));
    if (!kv_lengths.empty()) n = std::min(n, std::max<int64_t>(0, kv_lengths[b]));
    return n;
  }
};

// Turns scaled scores [q_len, kv_len] into probabilities in place, writing each row's log-sum-exp.
template <typename T>
void masked_softmax(const Geometry& g, int64_t b, T* scores, T* lse) {
  parallel_for(g.q_len, std::max<int64_t>(1, 8192 / std::max<int64_t>(g.kv_len, 1)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t i = begin; i < end; ++i) {
                   T* row = scores + i * g.kv_len;
                   const int64_t n = g.visible(b, i);
                   if (n == 0) {
                     for (int64_t j = 0; j < g.kv_len; ++j) row[j] = T(0);
                     lse[i] = -std::numeric_limits<T>::infinity();
                     continue;
                   }
                   T max = -std::numeric_limits<T>::infinity();
                   for (int64_t j = 0; j < n; ++j) max = std::max(max, row[j]);
                   T sum = 0;
                   for (int64_t j = 0; j < n; ++j) sum += std::exp(row[j] - max);
                   const T log_sum = max + std::log(sum);
                   for (int64_t j = 0; j < n; ++j) row[j] = std::exp(row[j] - log_sum);
                   for (int64_t j = n; j < g.kv_len; ++j) row[j] = T(0);
                   lse[i] = log_sum;
                 }
               });
}

template <typename T>
void attention_typed(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
                     const Tensor& out, const Tensor& lse) {
  const Geometry g(q, k, options);
  const Tensor qd = dense<T>(q), kd = dense<T>(k), vd = dense<T>(v);
  OutputBuffer<T> o(out);
  OutputBuffer<T> l(lse);
  std::vector<T> scores(static_cast<size_t>(g.q_len * g.kv_len));
  const int64_t q_block = g.q_len * g.head_dim, kv_block = g.kv_len * g.head_dim;
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t h = 0; h < g.q_heads; ++h) {
      const int64_t bh = b * g.q_heads + h, bkv = b * g.kv_heads + h / g.group;
      blas_gemm<T>(false, true, g.q_len, g.kv_len, g.head_dim, static_cast<T>(g.scale),
                   qd.data<T>() + bh * q_block, g.head_dim, kd.data<T>() + bkv * kv_block, g.head_dim, T(0),
                   scores.data(), g.kv_len);
      masked_softmax<T>(g, b, scores.data(), l.data() + bh * g.q_len);
      // Only keys some query sees enter P·V: those past them (a cache's unfilled positions) may hold
      // anything, NaN included, and 0·NaN is NaN.
      int64_t seen = 0;
      for (int64_t i = 0; i < g.q_len; ++i) seen = std::max(seen, g.visible(b, i));
      blas_gemm<T>(false, false, g.q_len, g.head_dim, seen, T(1), scores.data(), g.kv_len,
                   vd.data<T>() + bkv * kv_block, g.head_dim, T(0), o.data() + bh * q_block, g.head_dim);
    }
  }
  o.commit();
  l.commit();
}

template <typename T>
void attention_backward_typed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                              const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const Geometry g(q, k, options);
  const Tensor qd = dense<T>(q), kd = dense<T>(k), vd = dense<T>(v), od = dense<T>(out), ld = dense<T>(lse),
               gd = dense<T>(dout);
  OutputBuffer<T> dq_out(dq), dk_out(dk), dv_out(dv);
  std::fill(dk_out.data(), dk_out.data() + dk.numel(), T(0));
  std::fill(dv_out.data(), dv_out.data() + dv.numel(), T(0));
  const size_t st = static_cast<size_t>(g.q_len * g.kv_len);
  std::vector<T> p(st), dp(st), row_dot(static_cast<size_t>(g.q_len));
  const int64_t q_block = g.q_len * g.head_dim, kv_block = g.kv_len * g.head_dim;
  const T scale = static_cast<T>(g.scale);
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t h = 0; h < g.q_heads; ++h) {
      const int64_t bh = b * g.q_heads + h, bkv = b * g.kv_heads + h / g.group;
      const T* qh = qd.data<T>() + bh * q_block;
      const T* kh = kd.data<T>() + bkv * kv_block;
      const T* vh = vd.data<T>() + bkv * kv_block;
      const T* oh = od.data<T>() + bh * q_block;
      const T* gh = gd.data<T>() + bh * q_block;
      const T* lh = ld.data<T>() + bh * g.q_len;
      // P = exp(scale·Q·Kᵀ − lse) on visible keys.
      blas_gemm<T>(false, true, g.q_len, g.kv_len, g.head_dim, scale, qh, g.head_dim, kh, g.head_dim, T(0),
                   p.data(), g.kv_len);
      for (int64_t i = 0; i < g.q_len; ++i) {
        const int64_t n = g.visible(b, i);
        T* row = p.data() + i * g.kv_len;
        for (int64_t j = 0; j < g.kv_len; ++j) row[j] = j < n ? std::exp(row[j] - lh[i]) : T(0);
        T dot = 0;
        for (int64_t d = 0; d < g.head_dim; ++d) dot += gh[i * g.head_dim + d] * oh[i * g.head_dim + d];
        row_dot[i] = dot;
      }
      // dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ∘ (dP − rowsum(dO ∘ O));  dQ = scale·dS·K;  dK += scale·dSᵀ·Q.
      blas_gemm<T>(true, false, g.kv_len, g.head_dim, g.q_len, T(1), p.data(), g.kv_len, gh, g.head_dim, T(1),
                   dv_out.data() + bkv * kv_block, g.head_dim);
      blas_gemm<T>(false, true, g.q_len, g.kv_len, g.head_dim, T(1), gh, g.head_dim, vh, g.head_dim, T(0),
                   dp.data(), g.kv_len);
      for (int64_t i = 0; i < g.q_len; ++i)
        for (int64_t j = 0; j < g.kv_len; ++j)
          dp[i * g.kv_len + j] = p[i * g.kv_len + j] * (dp[i * g.kv_len + j] - row_dot[i]);
      blas_gemm<T>(false, false, g.q_len, g.head_dim, g.kv_len, scale, dp.data(), g.kv_len, kh, g.head_dim,
                   T(0), dq_out.data() + bh * q_block, g.head_dim);
      blas_gemm<T>(true, false, g.kv_len, g.head_dim, g.q_len, scale, dp.data(), g.kv_len, qh, g.head_dim,
                   T(1), dk_out.data() + bkv * kv_block, g.head_dim);
    }
  }
  dq_out.commit();
  dk_out.commit();
  dv_out.commit();
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
               const Tensor& out, const Tensor& lse) {
  with_compute_type(q.dtype(), [&](auto tag) { attention_typed<decltype(tag)>(q, k, v, options, out, lse); });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  with_compute_type(q.dtype(), [&](auto tag) {
    attention_backward_typed<decltype(tag)>(q, k, v, out, lse, dout, options, dq, dk, dv);
  });
}

}  // namespace wick::cpu
