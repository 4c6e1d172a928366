// Rotary embedding. Frequencies are formed in f32 as the reference forms them (inv_freq = 1 / theta^(2i/d),
// angle = position · inv_freq); the inverse (backward) rotates by −angle. Dimensions past rotary_dims are
// copied. The common case (16-bit, half-split, every dimension rotated, 16-byte rows) runs one thread per 8
// pairs, on 16-byte vectors and 32-bit indices, with the frequencies in shared memory; the rest one thread
// per pair.
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

// Most rotated pairs per head the vector kernel takes (its table of frequencies in shared memory).
constexpr int kMaxVectorHalf = 256;

// Threads of the vector kernel: one per 8 consecutive pairs (i .. i+7 with i+half .. i+half+7) of a row. In
// the input and the output the heads are contiguous within a token, tokens `x_stride` and `y_stride`
// elements apart (a column block of a wider product, say). The inverse frequencies, the same for every row,
// are formed once per block.
template <typename T>
__global__ void rope_vector_kernel(const T* x, T* y, RopeArgs a, uint32_t rows, int64_t x_stride,
                                   int64_t y_stride) {
  const uint32_t half = static_cast<uint32_t>(a.rotary / 2), per_row = half / 8;
  __shared__ float inv_freq[kMaxVectorHalf];
  for (uint32_t i = threadIdx.x; i < half; i += blockDim.x)
    inv_freq[i] = 1.0f / powf(a.theta, static_cast<float>(2 * i) / static_cast<float>(a.rotary));
  __syncthreads();
  const uint32_t heads = static_cast<uint32_t>(a.heads), seq = static_cast<uint32_t>(a.seq);
  const uint32_t total = rows * per_row;
  for (uint32_t t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    const uint32_t row = t / per_row, i0 = (t % per_row) * 8;
    const uint32_t bs = row / heads, b = bs / seq, s = bs % seq;
    const int64_t pos = a.positions ? a.positions[a.per_batch ? int64_t{b} * seq + s : s] : a.offset + s;
    const int64_t head = static_cast<int64_t>(row - bs * heads) * a.head_dim;
    const T* in = x + static_cast<int64_t>(bs) * x_stride + head;
    T* out = y + static_cast<int64_t>(bs) * y_stride + head;
    const uint4 raw_u = *reinterpret_cast<const uint4*>(in + i0);
    const uint4 raw_v = *reinterpret_cast<const uint4*>(in + i0 + half);
    const T* u = reinterpret_cast<const T*>(&raw_u);
    const T* v = reinterpret_cast<const T*>(&raw_v);
    uint4 raw_first, raw_second;
    T* first = reinterpret_cast<T*>(&raw_first);
    T* second = reinterpret_cast<T*>(&raw_second);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      float sin_v, cos_v;
      sincosf(static_cast<float>(pos) * inv_freq[i0 + e], &sin_v, &cos_v);
      sin_v *= a.sign;
      const float ue = to_float(u[e]), ve = to_float(v[e]);
      first[e] = from_float<T>(ue * cos_v - ve * sin_v);
      second[e] = from_float<T>(ve * cos_v + ue * sin_v);
    }
    *reinterpret_cast<uint4*>(out + i0) = raw_first;
    *reinterpret_cast<uint4*>(out + i0 + half) = raw_second;
  }
}

bool aligned16(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// Whether x's tokens are rows of whole heads (heads contiguous, tokens evenly spaced), as the vector kernel
// reads them.
bool token_rows(const Tensor& x) {
  return x.stride(3) == 1 && x.stride(2) == x.size(3) &&
         (x.size(0) == 1 || x.stride(0) == x.size(1) * x.stride(1)) && x.stride(1) % 8 == 0;
}

}  // namespace

void rope(const Tensor& x, const ops::RopeOptions& options, bool inverse, const Tensor& y) {
  const Tensor xd = token_rows(x) ? x : x.contiguous();
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
  const int64_t rows = x.numel() / x.size(3);
  if ((x.dtype() == DType::bf16 || x.dtype() == DType::f16) && args.half_split &&
      args.rotary == args.head_dim && args.head_dim % 16 == 0 && args.rotary / 2 <= kMaxVectorHalf &&
      token_rows(y) && aligned16(xd) && aligned16(y) && rows * (args.head_dim / 16) < (int64_t{1} << 31)) {
    const int64_t threads = rows * (args.head_dim / 16);
    with_float_type(x.dtype(), "rope", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (sizeof(T) == 2)
        rope_vector_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(ceil_div(threads, 256), 65536)), 256,
                                0, stream_of(x)>>>(ptr<const T>(xd), ptr<T>(y), args,
                                                   static_cast<uint32_t>(rows), xd.stride(1), y.stride(1));
    });
    check_launch("rope");
    return;
  }
  const Tensor xc = xd.contiguous();
  const Tensor yc = y.is_contiguous() ? y : Tensor::empty(y.shape(), y.dtype(), y.device());
  with_float_type(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<T, typename Accumulate<T>::type>
        <<<static_cast<unsigned>(std::min<int64_t>(ceil_div(pairs, 256), 65536)), 256, 0, stream_of(x)>>>(
            ptr<const T>(xc), ptr<T>(yc), args);
  });
  check_launch("rope");
  if (!y.is_contiguous()) y.copy_(yc);
}

}  // namespace wick::cuda
