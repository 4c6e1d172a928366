// Rotary embedding, one thread per rotated pair of one (batch, token, head). Frequencies are formed in f32 as
// the reference forms them (inv_freq = 1 / theta^(2i/d), angle = position · inv_freq); the inverse (backward)
// rotates by −angle. Dimensions past rotary_dims are copied.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

struct RopeArgs {
  int64_t batch, seq, heads, head_dim, rotary;
  const int64_t* positions;  // null: offset + s
  bool per_batch;
  int64_t offset;
  float theta;
  bool half_split;
  float sign;
};

template <typename T, typename A>
__global__ void rope_kernel(const T* x, T* y, RopeArgs a) {
  const int64_t half = a.rotary / 2;
  const int64_t pairs = a.batch * a.seq * a.heads * half;
  const int64_t tail = a.head_dim - a.rotary;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < pairs;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t % half;
    const int64_t bsh = t / half;  // (b·seq + s)·heads + h
    const int64_t bs = bsh / a.heads;
    const int64_t b = bs / a.seq, s = bs % a.seq;
    const int64_t pos = a.positions ? a.positions[a.per_batch ? b * a.seq + s : s] : a.offset + s;
    const float inv_freq = 1.0f / powf(a.theta, static_cast<float>(2 * i) / static_cast<float>(a.rotary));
    const float angle = static_cast<float>(pos) * inv_freq;
    float sin_v, cos_v;
    sincosf(angle, &sin_v, &cos_v);
    sin_v *= a.sign;
    const T* in = x + bsh * a.head_dim;
    T* out = y + bsh * a.head_dim;
    const int64_t i0 = a.half_split ? i : 2 * i, i1 = a.half_split ? i + half : 2 * i + 1;
    const A u = load_as<A>(in + i0), v = load_as<A>(in + i1);
    out[i0] = store_as<T>(u * A(cos_v) - v * A(sin_v));
    out[i1] = store_as<T>(v * A(cos_v) + u * A(sin_v));
    for (int64_t j = i; j < tail; j += half) out[a.rotary + j] = in[a.rotary + j];
  }
}

}  // namespace

void rope(const Tensor& x, const ops::RopeOptions& options, bool inverse, const Tensor& y) {
  const Tensor xd = x.contiguous();
  const Tensor positions =
      options.positions.defined() ? options.positions.to(DType::i64).contiguous() : Tensor();
  RopeArgs args{x.size(0),
                x.size(1),
                x.size(2),
                x.size(3),
                options.rotary_dims == 0 ? x.size(3) : options.rotary_dims,
                positions.defined() ? ptr<const int64_t>(positions) : nullptr,
                positions.defined() && positions.dim() == 2,
                options.position_offset,
                static_cast<float>(options.theta),
                options.style == ops::RopeStyle::half_split,
                inverse ? -1.0f : 1.0f};
  const int64_t pairs = x.numel() / x.size(3) * (args.rotary / 2);
  if (pairs == 0) return;
  with_float_type(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<T, typename Accumulate<T>::type>
        <<<static_cast<unsigned>(std::min<int64_t>(ceil_div(pairs, 256), 65536)), 256, 0, stream_of(x)>>>(
            ptr<const T>(xd), ptr<T>(y), args);
  });
  check_launch("rope");
}

}  // namespace wick::cuda
