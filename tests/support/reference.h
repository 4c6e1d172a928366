// Naive float64 reference implementations of the ops, written from their definitions with plain loops over
// std::vector<double> (row-major), independent of the library's kernels; plus the comparison helpers the op
// tests share.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support/test_util.h"
#include "wick/numeric_check.h"
#include "wick/wick.h"

namespace wick::ref {

using Vec = std::vector<double>;
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------------------
// Comparison helpers
// ---------------------------------------------------------------------------------------------------------

inline std::string seed_of(const Generator& gen) {
  return "generator seed " + std::to_string(gen.seed());
}

// Expects `actual` to have expected.size() elements, no NaN where the reference has none, the same infinities
// where the reference is infinite, and a relative L2 error within `tol` over the finite entries.
inline void expect_close(const Tensor& actual, const Vec& expected, double tol) {
  const Vec got = test::values(actual);
  ASSERT_EQ(got.size(), expected.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i << " is " << got[i] << ", expected NaN";
    } else if (std::isinf(expected[i])) {
      EXPECT_EQ(got[i], expected[i]) << "element " << i;
    } else {
      ASSERT_TRUE(std::isfinite(got[i]))
          << "element " << i << " is " << got[i] << ", expected " << expected[i];
      diff += (got[i] - expected[i]) * (got[i] - expected[i]);
      norm += expected[i] * expected[i];
    }
  }
  const double error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  EXPECT_LE(error, tol) << "relative L2 error over " << got.size() << " elements of " << actual.str();
}

// Shapes with very few elements per row are judged almost element by element, where f32 and half-precision
// rounding next to an inherent cancellation (a derivative's root, a row of nearly equal values, a short sum
// of mixed signs) can exceed a tolerance meant for whole tensors. Such edge shapes run in f64 only, with a
// tolerance that still catches any indexing or logic error.
inline bool is_edge_shape(const Shape& shape) {
  return shape.empty() || shape.back() < 4 || shape_numel(shape) < 16;
}
inline bool skip_for_edge_shape(DType dtype, const Shape& shape) {
  return is_edge_shape(shape) && dtype != DType::f64;
}
inline double tolerance_for(DType dtype, const Shape& shape) {
  return is_edge_shape(shape) ? 1e-9 : test::tolerance(dtype);
}

// A spread of flat indices into n elements (all of them when n is small).
inline std::vector<int64_t> sample_indices(int64_t n, int64_t count = 24) {
  std::vector<int64_t> indices;
  const int64_t step = std::max<int64_t>(1, n / count);
  for (int64_t i = 0; i < n; i += step) indices.push_back(i);
  if (indices.back() != n - 1) indices.push_back(n - 1);
  return indices;
}

// Checks the analytic gradient dL/dx of L(x) = Σ f(x) ∘ weights against central finite differences in f64.
inline void expect_matches_finite_difference(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                                             const Tensor& weights, const Tensor& analytic,
                                             double tol = 1e-6) {
  ASSERT_EQ(x.dtype(), DType::f64);
  ASSERT_EQ(analytic.shape(), x.shape());
  const std::vector<int64_t> indices = sample_indices(x.numel());
  const Vec numeric = finite_difference(f, x, weights, indices);
  const Vec all = test::values(analytic);
  Vec picked;
  for (int64_t i : indices) picked.push_back(all[static_cast<size_t>(i)]);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < picked.size(); ++i) {
    ASSERT_TRUE(std::isfinite(picked[i]))
        << "analytic gradient at index " << indices[i] << " is " << picked[i];
    diff += (picked[i] - numeric[i]) * (picked[i] - numeric[i]);
    norm += numeric[i] * numeric[i];
  }
  ASSERT_GT(norm, 0) << "finite differences are all zero: the check would be vacuous";
  EXPECT_LE(std::sqrt(diff / norm), tol) << "analytic gradient vs finite differences";
}

// Σ a·b over all elements.
inline double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// ---------------------------------------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------------------------------------

// Masks for the last axis: causal (column j visible to row i when j <= i + offset) and per-batch lengths
// (batch = index along the first axis; columns j >= lengths[b] hidden).
struct SoftmaxMask {
  bool causal = false;
  int64_t offset = 0;
  std::vector<int64_t> lengths;
};

// Splits a row-major shape around `axis` into (outer, n, inner).
inline void split_axis(const Shape& shape, int64_t axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  n = shape[axis];
  for (int64_t d = axis + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
}

inline Vec softmax(const Vec& x, const Shape& shape, int64_t axis, const SoftmaxMask& mask = {},
                   bool log = false) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (axis < 0) axis += rank;
  int64_t outer, n, inner;
  split_axis(shape, axis, outer, n, inner);
  const int64_t rows_per_matrix = rank >= 2 ? shape[rank - 2] : 1;
  const int64_t rows_per_batch = outer / shape[0];  // masks apply to the last axis only (inner == 1)
  Vec y(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + in); };
      auto visible = [&](int64_t j) {
        if (mask.causal && j > o % rows_per_matrix + mask.offset) return false;
        if (!mask.lengths.empty() && j >= mask.lengths[static_cast<size_t>(o / rows_per_batch)]) return false;
        return true;
      };
      double max = -kInf;
      for (int64_t j = 0; j < n; ++j)
        if (visible(j)) max = std::max(max, x[at(j)]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j)
        if (visible(j)) sum += std::exp(x[at(j)] - max);
      for (int64_t j = 0; j < n; ++j) {
        if (!visible(j)) {
          y[at(j)] = log ? -kInf : 0.0;
        } else {
          y[at(j)] = log ? x[at(j)] - max - std::log(sum) : std::exp(x[at(j)] - max) / sum;
        }
      }
    }
  }
  return y;
}

// dx_i = Σ_j dy_j ∂y_j/∂x_i with the full Jacobian: softmax ∂y_j/∂x_i = y_j(δ_ij − y_i), log-softmax
// ∂y_j/∂x_i = δ_ij − p_i with p = exp(y).
inline Vec softmax_backward(const Vec& y, const Vec& dy, const Shape& shape, int64_t axis, bool log) {
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  int64_t outer, n, inner;
  split_axis(shape, axis, outer, n, inner);
  Vec dx(y.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + in); };
      for (int64_t i = 0; i < n; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          const double delta = i == j ? 1.0 : 0.0;
          const double jacobian = log ? delta - std::exp(y[at(i)]) : y[at(j)] * (delta - y[at(i)]);
          sum += dy[at(j)] * jacobian;
        }
        dx[at(i)] = sum;
      }
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------------------
// Norms (over the last axis of [rows, cols])
// ---------------------------------------------------------------------------------------------------------

inline Vec rms_norm(const Vec& x, const Vec& w, int64_t rows, int64_t cols, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t j = 0; j < cols; ++j) ms += x[r * cols + j] * x[r * cols + j];
    ms /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = x[r * cols + j] / std::sqrt(ms + eps) * w[j];
  }
  return y;
}

struct NormGrads {
  Vec dx, dweight, dbias;
};

// y_j = w_j·x_j·s, s = (mean(x²) + eps)^(−1/2): ∂y_j/∂x_i = w_j(δ_ij·s − x_j·x_i·s³/n).
inline NormGrads rms_norm_backward(const Vec& x, const Vec& w, const Vec& dy, int64_t rows, int64_t cols,
                                   double eps) {
  NormGrads g{Vec(x.size()), Vec(static_cast<size_t>(cols), 0.0), {}};
  const double n = static_cast<double>(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[r * cols];
    const double* gr = &dy[r * cols];
    double ms = 0;
    for (int64_t j = 0; j < cols; ++j) ms += xr[j] * xr[j];
    const double s = 1.0 / std::sqrt(ms / n + eps);
    for (int64_t i = 0; i < cols; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j)
        sum += gr[j] * w[j] * ((i == j ? s : 0.0) - xr[j] * xr[i] * s * s * s / n);
      g.dx[r * cols + i] = sum;
    }
    for (int64_t j = 0; j < cols; ++j) g.dweight[j] += gr[j] * xr[j] * s;
  }
  return g;
}

// Empty w or b means none.
inline Vec layer_norm(const Vec& x, const Vec& w, const Vec& b, int64_t rows, int64_t cols, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += x[r * cols + j];
    mean /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
    var /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) {
      double v = (x[r * cols + j] - mean) / std::sqrt(var + eps);
      if (!w.empty()) v *= w[j];
      if (!b.empty()) v += b[j];
      y[r * cols + j] = v;
    }
  }
  return y;
}

// x̂_j = (x_j − μ)·s, s = (var + eps)^(−1/2): ∂x̂_j/∂x_i = s(δ_ij − 1/n) − x̂_j·x̂_i·s/n.
inline NormGrads layer_norm_backward(const Vec& x, const Vec& w, const Vec& b, const Vec& dy, int64_t rows,
                                     int64_t cols, double eps) {
  NormGrads g{Vec(x.size()), w.empty() ? Vec() : Vec(static_cast<size_t>(cols), 0.0),
              b.empty() ? Vec() : Vec(static_cast<size_t>(cols), 0.0)};
  const double n = static_cast<double>(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[r * cols];
    const double* gr = &dy[r * cols];
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += xr[j];
    mean /= n;
    for (int64_t j = 0; j < cols; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    const double s = 1.0 / std::sqrt(var / n + eps);
    Vec xhat(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) xhat[j] = (xr[j] - mean) * s;
    for (int64_t i = 0; i < cols; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double dxhat = s * ((i == j ? 1.0 : 0.0) - 1.0 / n) - xhat[j] * xhat[i] * s / n;
        sum += gr[j] * (w.empty() ? 1.0 : w[j]) * dxhat;
      }
      g.dx[r * cols + i] = sum;
    }
    for (int64_t j = 0; j < cols; ++j) {
      if (!w.empty()) g.dweight[j] += gr[j] * xhat[j];
      if (!b.empty()) g.dbias[j] += gr[j];
    }
  }
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// Rotary position embedding on [batch, seq, heads, dim]
// ---------------------------------------------------------------------------------------------------------

struct RopeSpec {
  int64_t batch, seq, heads, dim;
  std::vector<int64_t> positions;  // [batch·seq]: the position of token s of batch b at b·seq + s
  double theta = 10000.0;
  bool interleaved = false;
  int64_t rotary = 0;  // 0 = dim
  bool inverse = false;
};

// Positions offset + s for every batch.
inline std::vector<int64_t> offset_positions(int64_t batch, int64_t seq, int64_t offset) {
  std::vector<int64_t> p;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) p.push_back(offset + s);
  return p;
}

// Pair i (of rotary/2) rotates by angle position·theta^(−2i/rotary); its elements are (i, i + rotary/2)
// half-split or (2i, 2i + 1) interleaved. Dimensions past `rotary` pass through.
inline Vec rope(const Vec& x, const RopeSpec& spec) {
  const int64_t rotary = spec.rotary == 0 ? spec.dim : spec.rotary;
  const int64_t half = rotary / 2;
  Vec y = x;
  for (int64_t b = 0; b < spec.batch; ++b) {
    for (int64_t s = 0; s < spec.seq; ++s) {
      const double pos = static_cast<double>(spec.positions[static_cast<size_t>(b * spec.seq + s)]);
      for (int64_t h = 0; h < spec.heads; ++h) {
        const int64_t base = ((b * spec.seq + s) * spec.heads + h) * spec.dim;
        for (int64_t i = 0; i < half; ++i) {
          double angle =
              pos * std::pow(spec.theta, -2.0 * static_cast<double>(i) / static_cast<double>(rotary));
          if (spec.inverse) angle = -angle;
          const int64_t i0 = spec.interleaved ? 2 * i : i;
          const int64_t i1 = spec.interleaved ? 2 * i + 1 : i + half;
          const double a = x[base + i0], c = x[base + i1];
          y[base + i0] = a * std::cos(angle) - c * std::sin(angle);
          y[base + i1] = a * std::sin(angle) + c * std::cos(angle);
        }
      }
    }
  }
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------------------------------------

inline double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
inline double silu(double x) {
  return x * sigmoid(x);
}
inline double silu_grad(double x) {
  return sigmoid(x) + x * sigmoid(x) * (1.0 - sigmoid(x));
}
inline double gelu_erf(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
inline double gelu_erf_grad(double x) {
  const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
  const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
  return cdf + x * pdf;
}
inline double gelu_tanh(double x) {
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}
inline double gelu_tanh_grad(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

inline Vec map(const Vec& x, double (*f)(double)) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Attention: q [B, Hq, S, D], k and v [B, Hkv, T, D]
// ---------------------------------------------------------------------------------------------------------

struct AttentionSpec {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, dim;
  bool causal = true;
  int64_t query_offset = 0;              // query i sees keys j <= i + query_offset when causal
  std::vector<int64_t> kv_lengths = {};  // empty = none
  double scale = 0;                      // the actual scale (no NaN default here)
};

struct AttentionOut {
  Vec out, lse;
};

struct AttentionGrads {
  Vec dq, dk, dv;
};

inline bool attention_visible(const AttentionSpec& a, int64_t b, int64_t i, int64_t j) {
  if (a.causal && j > i + a.query_offset) return false;
  if (!a.kv_lengths.empty() && j >= a.kv_lengths[static_cast<size_t>(b)]) return false;
  return true;
}

// Probabilities P[i][j] of one (batch, query head) and the log-sum-exp of each row (−∞ when none visible).
inline void attention_probs(const Vec& q, const Vec& k, const AttentionSpec& a, int64_t b, int64_t h,
                            std::vector<Vec>& p, Vec& lse) {
  const int64_t kvh = h / (a.q_heads / a.kv_heads);
  p.assign(static_cast<size_t>(a.q_len), Vec(static_cast<size_t>(a.kv_len), 0.0));
  lse.assign(static_cast<size_t>(a.q_len), -kInf);
  for (int64_t i = 0; i < a.q_len; ++i) {
    Vec s(static_cast<size_t>(a.kv_len), -kInf);
    double max = -kInf;
    for (int64_t j = 0; j < a.kv_len; ++j) {
      if (!attention_visible(a, b, i, j)) continue;
      double d = 0;
      for (int64_t c = 0; c < a.dim; ++c)
        d += q[((b * a.q_heads + h) * a.q_len + i) * a.dim + c] *
             k[((b * a.kv_heads + kvh) * a.kv_len + j) * a.dim + c];
      s[j] = a.scale * d;
      max = std::max(max, s[j]);
    }
    if (max == -kInf) continue;
    double sum = 0;
    for (int64_t j = 0; j < a.kv_len; ++j)
      if (s[j] != -kInf) sum += std::exp(s[j] - max);
    for (int64_t j = 0; j < a.kv_len; ++j)
      if (s[j] != -kInf) p[i][j] = std::exp(s[j] - max) / sum;
    lse[i] = max + std::log(sum);
  }
}

inline AttentionOut attention(const Vec& q, const Vec& k, const Vec& v, const AttentionSpec& a) {
  AttentionOut r{Vec(q.size(), 0.0), Vec(static_cast<size_t>(a.batch * a.q_heads * a.q_len))};
  std::vector<Vec> p;
  Vec lse;
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < a.q_heads; ++h) {
      attention_probs(q, k, a, b, h, p, lse);
      const int64_t kvh = h / (a.q_heads / a.kv_heads);
      for (int64_t i = 0; i < a.q_len; ++i) {
        r.lse[(b * a.q_heads + h) * a.q_len + i] = lse[i];
        for (int64_t j = 0; j < a.kv_len; ++j)
          for (int64_t c = 0; c < a.dim; ++c)
            r.out[((b * a.q_heads + h) * a.q_len + i) * a.dim + c] +=
                p[i][j] * v[((b * a.kv_heads + kvh) * a.kv_len + j) * a.dim + c];
      }
    }
  }
  return r;
}

// Chain rule through out = P·V, P = softmax(S), S = scale·Q·Kᵀ, with P recomputed from scratch.
inline AttentionGrads attention_backward(const Vec& q, const Vec& k, const Vec& v, const Vec& dout,
                                         const AttentionSpec& a) {
  AttentionGrads g{Vec(q.size(), 0.0), Vec(k.size(), 0.0), Vec(v.size(), 0.0)};
  std::vector<Vec> p;
  Vec lse;
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < a.q_heads; ++h) {
      attention_probs(q, k, a, b, h, p, lse);
      const int64_t kvh = h / (a.q_heads / a.kv_heads);
      auto qi = [&](int64_t i, int64_t c) {
        return static_cast<size_t>(((b * a.q_heads + h) * a.q_len + i) * a.dim + c);
      };
      auto kj = [&](int64_t j, int64_t c) {
        return static_cast<size_t>(((b * a.kv_heads + kvh) * a.kv_len + j) * a.dim + c);
      };
      for (int64_t i = 0; i < a.q_len; ++i) {
        Vec dp(static_cast<size_t>(a.kv_len), 0.0);
        for (int64_t j = 0; j < a.kv_len; ++j) {
          for (int64_t c = 0; c < a.dim; ++c) {
            g.dv[kj(j, c)] += p[i][j] * dout[qi(i, c)];
            dp[j] += dout[qi(i, c)] * v[kj(j, c)];
          }
        }
        double pdp = 0;
        for (int64_t j = 0; j < a.kv_len; ++j) pdp += p[i][j] * dp[j];
        for (int64_t j = 0; j < a.kv_len; ++j) {
          const double ds = p[i][j] * (dp[j] - pdp);
          for (int64_t c = 0; c < a.dim; ++c) {
            g.dq[qi(i, c)] += a.scale * ds * k[kj(j, c)];
            g.dk[kj(j, c)] += a.scale * ds * q[qi(i, c)];
          }
        }
      }
    }
  }
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// Cross-entropy over logits [n, classes]
// ---------------------------------------------------------------------------------------------------------

// Mean over counted rows of −log softmax(x)[target]; NaN when no row counts.
inline double cross_entropy(const Vec& x, int64_t n, int64_t classes, const std::vector<int64_t>& targets,
                            int64_t ignore_index) {
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (targets[r] == ignore_index) continue;
    const double* row = &x[r * classes];
    const double max = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(row[j] - max);
    total += std::log(sum) - (row[targets[r]] - max);
    ++counted;
  }
  return counted == 0 ? std::nan("") : total / static_cast<double>(counted);
}

inline Vec cross_entropy_backward(const Vec& x, int64_t n, int64_t classes,
                                  const std::vector<int64_t>& targets, int64_t ignore_index, double grad) {
  Vec d(x.size(), 0.0);
  int64_t counted = 0;
  for (int64_t r = 0; r < n; ++r) counted += targets[r] != ignore_index ? 1 : 0;
  for (int64_t r = 0; r < n; ++r) {
    if (targets[r] == ignore_index) continue;
    const double* row = &x[r * classes];
    const double max = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(row[j] - max);
    for (int64_t j = 0; j < classes; ++j) {
      const double p = std::exp(row[j] - max) / sum;
      d[r * classes + j] = (p - (j == targets[r] ? 1.0 : 0.0)) * grad / static_cast<double>(counted);
    }
  }
  return d;
}

}  // namespace wick::ref
