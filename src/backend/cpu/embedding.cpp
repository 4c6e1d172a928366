// Embedding gather and its scatter-add backward (ids validated by the front-end) (serial over ids so repeated
// ids add in a fixed order).
#include <cstring>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
void embedding(const Tensor& weight, const Tensor& ids, const Tensor& out) {
  const Tensor idx = dense_indices(ids);
  const int64_t* id = idx.data<int64_t>();
  const int64_t dim = weight.size(1), n = ids.numel(), vocab = weight.size(0);
  const Tensor table = weight.contiguous();
  const char* src = static_cast<const char*>(table.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());  // freshly allocated, dense
  const size_t row_bytes = static_cast<size_t>(dim) * dtype_size(weight.dtype());
  parallel_for(n, std::max<int64_t>(1, 8192 / std::max<int64_t>(dim, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // Out-of-range ids only reach here unchecked (embedding_unchecked): they give a zero row.
      if (id[i] >= 0 && id[i] < vocab) {
        std::memcpy(dst + i * row_bytes, src + id[i] * row_bytes, row_bytes);
      } else {
        std::memset(dst + i * row_bytes, 0, row_bytes);
      }
    }
  });
}

void embedding_backward(const Tensor& ids, const Tensor& dy, const Tensor& dweight) {
  with_compute_type(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor idx = dense_indices(ids);
    const Tensor gd = dense<T>(dy);
    OutputBuffer<T> out(dweight);
    const int64_t* id = idx.data<int64_t>();
    const int64_t vocab = dweight.size(0), dim = dweight.size(1), n = ids.numel();
    T* dw = out.data();
    const T* g = gd.data<T>();
    std::memset(static_cast<void*>(dw), 0, static_cast<size_t>(vocab * dim) * sizeof(T));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < dim; ++j) dw[id[i] * dim + j] += g[i * dim + j];
    out.commit();
  });
}

}  // namespace wick::cpu
