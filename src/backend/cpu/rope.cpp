// Rotary embedding. Frequencies and angles are formed in the compute type the way the reference forms them in
// f32 (inv_freq = 1 / theta^(2i/d), angle = position · inv_freq), so long positions round alike.
#include <cmath>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

template <typename T>
void rope_typed(const Tensor& x, const ops::RopeOptions& options, bool inverse, const Tensor& y) {
  const Tensor xd = dense<T>(x);
  OutputBuffer<T> out(y);
  const int64_t batch = x.size(0), seq = x.size(1), heads = x.size(2), head_dim = x.size(3);
  const int64_t rotary = options.rotary_dims == 0 ? head_dim : options.rotary_dims;
  const int64_t half = rotary / 2;
  std::vector<int64_t> positions;
  if (options.positions.defined()) positions = options.positions.to_vector<int64_t>();
  const bool per_batch = options.positions.defined() && options.positions.dim() == 2;
  std::vector<T> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] =
        T(1) / std::pow(static_cast<T>(options.theta), static_cast<T>(2 * i) / static_cast<T>(rotary));
  const T sign = inverse ? T(-1) : T(1);
  const T* src = xd.data<T>();
  T* dst = out.data();
  parallel_for(batch * seq, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, heads * head_dim)),
               [&](int64_t begin, int64_t end) {
                 std::vector<T> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
                 for (int64_t bs = begin; bs < end; ++bs) {
                   const int64_t b = bs / seq, s = bs % seq;
                   const int64_t pos = positions.empty() ? options.position_offset + s
                                                         : positions[per_batch ? b * seq + s : s];
                   for (int64_t i = 0; i < half; ++i) {
                     const T angle = static_cast<T>(pos) * inv_freq[i];
                     cos_v[i] = std::cos(angle);
                     sin_v[i] = sign * std::sin(angle);
                   }
                   for (int64_t h = 0; h < heads; ++h) {
                     const T* in = src + (bs * heads + h) * head_dim;
                     T* o = dst + (bs * heads + h) * head_dim;
                     for (int64_t i = 0; i < half; ++i) {
                       const int64_t i0 = options.style == ops::RopeStyle::half_split ? i : 2 * i;
                       const int64_t i1 = options.style == ops::RopeStyle::half_split ? i + half : 2 * i + 1;
                       const T a = in[i0], c = in[i1];
                       o[i0] = a * cos_v[i] - c * sin_v[i];
                       o[i1] = c * cos_v[i] + a * sin_v[i];
                     }
                     for (int64_t j = rotary; j < head_dim; ++j) o[j] = in[j];
                   }
                 }
               });
  out.commit();
}

}  // namespace

void rope(const Tensor& x, const ops::RopeOptions& options, bool inverse, const Tensor& y) {
  with_compute_type(x.dtype(), [&](auto tag) { rope_typed<decltype(tag)>(x, options, inverse, y); });
}

}  // namespace wick::cpu
