// The embedding layer of BERT as one kernel (three row lookups, their sum, LayerNorm), and mean pooling over
// right-padded rows as one kernel that reads each hidden value once.
#include "backend/cuda/encoder_fused.h"

#include "backend/cuda/common.cuh"
#include "backend/cuda/layer_norm_row.cuh"
#include "backend/cuda/row_cache.cuh"

namespace wick::cuda {
namespace {

constexpr int kWarps = 8;  // token rows a block

struct EmbeddingSumParams {
  const void* word;
  const void* type;
  const void* position;
  const int64_t* ids;
  const int64_t* types;
  const int64_t* positions;
  const void* weight;
  const void* bias;
  void* out;
  int64_t tokens, seq, hidden;
  int64_t word_rows, type_rows, position_rows;
  float eps;
};

// The value a float takes once stored as T, as the elementwise add stores its result.
template <typename T>
__device__ __forceinline__ float rounded(float x) {
  return to_float(from_float<T>(x));
}

template <typename T, int K>
__global__ void __launch_bounds__(kWarps * 32) embedding_sum_layer_norm_kernel(const EmbeddingSumParams p) {
  constexpr int E = vector_elements<T>;
  const int64_t token = blockIdx.x * int64_t(kWarps) + threadIdx.x / 32;
  if (token >= p.tokens) return;
  const int lane = threadIdx.x % 32;
  const int64_t vectors = p.hidden / E;
  // An id outside its table reads as a zero row, as embedding_unchecked gives it.
  const auto row_of = [&](const void* table, int64_t id, int64_t rows) -> const T* {
    return id >= 0 && id < rows ? static_cast<const T*>(table) + id * p.hidden : nullptr;
  };
  const T* word = row_of(p.word, p.ids[token], p.word_rows);
  const T* type = row_of(p.type, p.types[token], p.type_rows);
  const T* position = row_of(p.position, p.positions[token % p.seq], p.position_rows);
  float v[K][E];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const int64_t index = lane + 32 * j;
    if (index >= vectors) continue;
    float a[E] = {}, b[E] = {}, c[E] = {};
    if (word) load_vector(word, index, a);
    if (type) load_vector(type, index, b);
    if (position) load_vector(position, index, c);
#pragma unroll
    for (int i = 0; i < E; ++i) v[j][i] = rounded<T>(rounded<T>(a[i] + b[i]) + c[i]);
  }
  layer_norm_warp_row<T, K>(v, vectors, p.hidden, static_cast<const T*>(p.weight),
                            static_cast<const T*>(p.bias), static_cast<T*>(p.out) + token * p.hidden, p.eps);
}

// One block per batch row and a strip of columns; each thread sums its columns over the row's first
// `lengths[b]` positions in order.
template <typename T, typename A>
__global__ void mean_pool_kernel(const T* x, const int64_t* lengths, A* out, int64_t seq, int64_t width) {
  const int64_t b = blockIdx.x;
  const int64_t length = min(max(lengths[b], int64_t{0}), seq);
  const T* rows = x + b * seq * width;
  for (int64_t c = blockIdx.y * int64_t(blockDim.x) + threadIdx.x; c < width;
       c += int64_t(gridDim.y) * blockDim.x) {
    A sum = 0;
#pragma unroll 8
    for (int64_t s = 0; s < length; ++s) sum += load_as<A>(rows + s * width + c);
    out[b * width + c] = length > 0 ? sum / A(length) : A(0);
  }
}

bool aligned16(const Tensor& t) {
  return !t.defined() || reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

}  // namespace

bool embedding_sum_layer_norm_applies(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                                      const Tensor& types, const Tensor& position_table,
                                      const Tensor& positions, const Tensor& norm_weight,
                                      const Tensor& norm_bias) {
  const DType dtype = word_table.dtype();
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16) return false;
  const int64_t per_vector = 16 / static_cast<int64_t>(dtype_size(dtype)), hidden = word_table.size(1);
  if (hidden == 0 || hidden % per_vector != 0 || hidden / per_vector > 32 * 8) return false;
  for (const Tensor* t : {&word_table, &type_table, &position_table, &norm_weight, &norm_bias})
    if (t->defined() && (!t->is_contiguous() || !aligned16(*t))) return false;
  for (const Tensor* t : {&ids, &types, &positions})
    if (!t->is_contiguous()) return false;
  return true;
}

void embedding_sum_layer_norm(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                              const Tensor& types, const Tensor& position_table, const Tensor& positions,
                              const Tensor& norm_weight, const Tensor& norm_bias, double eps,
                              const Tensor& out) {
  const int64_t tokens = ids.numel();
  if (tokens == 0) return;
  DeviceGuard guard(out.device().index);
  const auto data = [](const Tensor& t) -> const void* { return t.defined() ? t.data_ptr() : nullptr; };
  const EmbeddingSumParams p{word_table.data_ptr(),
                             type_table.data_ptr(),
                             position_table.data_ptr(),
                             ptr<const int64_t>(ids),
                             ptr<const int64_t>(types),
                             ptr<const int64_t>(positions),
                             data(norm_weight),
                             data(norm_bias),
                             out.data_ptr(),
                             tokens,
                             positions.numel(),
                             word_table.size(1),
                             word_table.size(0),
                             type_table.size(0),
                             position_table.size(0),
                             static_cast<float>(eps)};
  const int64_t vectors = word_table.size(1) / (16 / static_cast<int64_t>(dtype_size(word_table.dtype())));
  const auto blocks = static_cast<unsigned>(ceil_div(tokens, int64_t{kWarps}));
  with_float_type(word_table.dtype(), "embedding_sum_layer_norm", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      with_vectors_per_thread(layer_norm_warp_vectors_per_lane(vectors), [&](auto k) {
        embedding_sum_layer_norm_kernel<T, decltype(k)::value><<<blocks, kWarps * 32, 0, stream_of(out)>>>(p);
      });
    }
  });
  check_launch("embedding_sum_layer_norm");
}

void mean_pool(const Tensor& x, const Tensor& lengths, const Tensor& out) {
  const int64_t batch = x.size(0), seq = x.size(1), width = x.size(2);
  if (batch == 0 || width == 0) return;
  DeviceGuard guard(x.device().index);
  const Tensor xd = x.contiguous(), ld = lengths.contiguous();
  const int threads = static_cast<int>(std::min<int64_t>(256, ceil_div(width, 32) * 32));
  const dim3 grid(static_cast<unsigned>(batch),
                  static_cast<unsigned>(std::min<int64_t>(ceil_div(width, threads), 65535)));
  with_float_type(x.dtype(), "mean_pool", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    mean_pool_kernel<T, A><<<grid, threads, 0, stream_of(out)>>>(ptr<const T>(xd), ptr<const int64_t>(ld),
                                                                 ptr<A>(out), seq, width);
  });
  check_launch("mean_pool");
}

}  // namespace wick::cuda
