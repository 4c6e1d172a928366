// GEMM on cuBLASLt, the MPSMatrixMultiplication counterpart. cuBLASLt is column-major, so a row-major
// C[M×N] = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ: B goes first. A row-major stored matrix is, read
// column-major, its own transpose, so each operand's transpose flag is the requested op flipped by its
// layout. Matrix views go straight in (leading dimensions, batch strides, stride-0 broadcast batches): no
// copy where the layout is expressible. Algorithms come from cuBLASLt's heuristic once per (shape, dtype,
// layout) and are cached; each stream has one workspace.
#include <map>
#include <mutex>
#include <tuple>

#include "backend/cuda/cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"
#include "wick/matrix_view.h"

namespace wick::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f64:
      return CUDA_R_64F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      fail("gemm", "unsupported dtype {}", dtype_name(dtype));
  }
}

struct AlgoKey {
  int device;
  int64_t m, n, k, batch, lda, ldb, ldc, stride_a, stride_b, stride_c;
  int types, flags;
  bool operator<(const AlgoKey& o) const {
    return std::tie(device, m, n, k, batch, lda, ldb, ldc, stride_a, stride_b, stride_c, types, flags) <
           std::tie(o.device, o.m, o.n, o.k, o.batch, o.lda, o.ldb, o.ldc, o.stride_a, o.stride_b, o.stride_c,
                    o.types, o.flags);
  }
};

struct PerDevice {
  std::unique_ptr<LtHandle> handle;
  std::map<cudaStream_t, Tensor> workspaces;
};

std::mutex mutex;
// Never destroyed: the workspaces are device memory, which must not be freed after the runtime shuts down.
auto& devices = *new std::map<int, PerDevice>();
std::map<AlgoKey, cublasLtMatmulAlgo_t> algorithms;

}  // namespace

void reserve_gemm_workspace(int device, cudaStream_t stream) {
  std::lock_guard lock(mutex);
  Tensor& workspace = devices[device].workspaces[stream];
  if (!workspace.defined())
    workspace = Tensor::empty({static_cast<int64_t>(kWorkspaceBytes)}, DType::u8, Device::cuda(device));
}

void release_gemm_workspace(int device, cudaStream_t stream) {
  std::lock_guard lock(mutex);
  devices[device].workspaces.erase(stream);
}

namespace {

// Runs the product on cuBLASLt. Returns false, having done nothing, only when the fused bias gradient was
// asked for and cuBLASLt has no algorithm with that epilogue here.
bool run_lt(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  const int device = c.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = stream_for(device);
  const Shape batch_shape(c.shape().begin(), c.shape().end() - 2);
  auto expand_batch = [&](const Tensor& t) {
    Shape shape = batch_shape;
    shape.push_back(t.size(-2));
    shape.push_back(t.size(-1));
    return t.expand(shape);
  };
  const MatrixOperand A = matrix_operand(expand_batch(a));
  const MatrixOperand B = matrix_operand(expand_batch(b));
  // D must be a row-major, non-broadcast view; otherwise compute into a dense temporary and copy back.
  std::optional<MatrixView> c_view = try_matrix_view(c);
  const bool c_direct = c_view && !c_view->column_major && (c_view->batch <= 1 || c_view->batch_stride != 0);
  Tensor c_work = c;
  if (!c_direct) {
    c_work = Tensor::empty(c.shape(), c.dtype(), c.device());
    if (options.beta != 0.0) c_work.copy_(c);
    c_view = try_matrix_view(c_work);
  }
  const MatrixView& C = *c_view;
  const int64_t m = C.rows, n = C.cols, k = options.transpose_a ? A.view.rows : A.view.cols;
  const int64_t batch = shape_numel(batch_shape);
  if (m == 0 || n == 0 || k == 0) {
    if (options.bias_gradient.defined()) return false;  // nothing to fuse into
  }
  if (m == 0 || n == 0) return true;
  if (k == 0) {  // no products: C = beta·C
    if (options.beta == 0.0) {
      c.fill_(0.0);
    } else {
      c.copy_(ops::scale(c, options.beta));
    }
    if (options.bias.defined()) c.copy_(ops::add(c, options.bias));
    return true;
  }
  if (batch > INT32_MAX) fail("gemm", "batch count {} exceeds cuBLASLt's limit", batch);

  const bool f64 = a.dtype() == DType::f64;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (options.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  const cudaDataType_t scale_type = f64 ? CUDA_R_64F : CUDA_R_32F;
  LtMatmulDesc desc(compute, scale_type);
  // Lt's first operand is our B, its second our A (see the comment at the top).
  const cublasOperation_t op_first = (options.transpose_b != B.view.column_major) ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second =
      (options.transpose_a != A.view.column_major) ? CUBLAS_OP_T : CUBLAS_OP_N;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, op_first);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, op_second);
  // Lt's output is Cᵀ (N×M column-major), so its per-row bias is our per-column bias.
  Tensor bias;
  if (options.bias.defined()) {
    bias = options.bias.contiguous();
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    const void* bias_pointer = bias.data_ptr();
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias_pointer);
    if (batch > 1) desc.set(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, int64_t{0});
  }
  // A stored matrix of r×c read column-major: row-major storage gives a c×r matrix, column-major an r×c one.
  auto layout_of = [&](const MatrixView& v) {
    const uint64_t rows = v.column_major ? v.rows : v.cols, cols = v.column_major ? v.cols : v.rows;
    return std::make_unique<LtLayout>(data_type(v.dtype), rows, cols, v.ld, static_cast<int32_t>(batch),
                                      v.batch_stride);
  };
  auto first = layout_of(B.view);
  auto second = layout_of(A.view);
  auto out = layout_of(C);

  // The bias gradient Σ_k op(A)[m, k] reduces Lt's second operand (our A) over K: the BGRADB epilogue.
  if (options.bias_gradient.defined()) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BGRADB);
    const void* pointer = options.bias_gradient.data_ptr();
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, pointer);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, f64 ? CUDA_R_64F : CUDA_R_32F);
  }
  PerDevice* per_device;
  cublasLtMatmulAlgo_t algo;
  {
    std::lock_guard lock(mutex);
    per_device = &devices[device];
    if (!per_device->handle) per_device->handle = std::make_unique<LtHandle>();
    Tensor& workspace = per_device->workspaces[stream];
    if (!workspace.defined())
      workspace = Tensor::empty({static_cast<int64_t>(kWorkspaceBytes)}, DType::u8, c.device());
    const AlgoKey key{device,
                      m,
                      n,
                      k,
                      batch,
                      A.view.ld,
                      B.view.ld,
                      C.ld,
                      A.view.batch_stride,
                      B.view.batch_stride,
                      C.batch_stride,
                      static_cast<int>(a.dtype()) * 16 + static_cast<int>(c.dtype()),
                      (op_first == CUBLAS_OP_T) * 1 + (op_second == CUBLAS_OP_T) * 2 +
                          options.allow_tf32 * 4 + (options.beta != 0.0) * 8 + options.bias.defined() * 16 +
                          options.bias_gradient.defined() * 32};
    auto found = algorithms.find(key);
    if (found == algorithms.end()) {
      LtPreference preference(kWorkspaceBytes);
      cublasLtMatmulHeuristicResult_t result{};
      int count = 0;
      const cublasStatus_t status =
          cublasLtMatmulAlgoGetHeuristic(per_device->handle->get(), desc.get(), first->get(), second->get(),
                                         out->get(), out->get(), preference.get(), 1, &result, &count);
      if (options.bias_gradient.defined() && (status != CUBLAS_STATUS_SUCCESS || count == 0)) return false;
      check(status, "gemm", "cublasLtMatmulAlgoGetHeuristic");
      if (count == 0)
        fail("gemm", "cuBLASLt has no algorithm for {}×{}×{} (batch {}) with a={}, c={}", m, n, k, batch,
             a.str(), c.str());
      found = algorithms.emplace(key, result.algo).first;
    }
    algo = found->second;
  }
  const Tensor& workspace = per_device->workspaces[stream];
  const double alpha64 = options.alpha, beta64 = options.beta;
  const float alpha32 = static_cast<float>(options.alpha), beta32 = static_cast<float>(options.beta);
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : static_cast<const void*>(&alpha32);
  const void* beta = f64 ? static_cast<const void*>(&beta64) : static_cast<const void*>(&beta32);
  check(cublasLtMatmul(per_device->handle->get(), desc.get(), alpha, B.view.data, first->get(), A.view.data,
                       second->get(), beta, C.data, out->get(), C.data, out->get(), &algo,
                       workspace.data_ptr(), kWorkspaceBytes, stream),
        "gemm", "cublasLtMatmul");
  if (!c_direct) c.copy_(c_work);
  return true;
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  if (run_lt(a, b, c, options)) return;
  // No fused bias gradient here: the plain product, then one reduction of op(A) over K.
  ops::GemmOptions plain = options;
  plain.bias_gradient = Tensor();
  run_lt(a, b, c, plain);
  const Tensor op_a = options.transpose_a ? a.transpose(0, 1) : a;
  const Tensor sums = Tensor::empty({op_a.size(0), 1}, options.bias_gradient.dtype(), c.device());
  sum_to_shape(op_a, sums);
  options.bias_gradient.copy_(sums.view({op_a.size(0)}));
}

}  // namespace wick::cuda
