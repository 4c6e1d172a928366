// GEMM on cuBLASLt, the MPSMatrixMultiplication counterpart. cuBLASLt is column-major, so a row-major
// C[M×N] = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ: B goes first. A row-major stored matrix is, read
// column-major, its own transpose, so each operand's transpose flag is the requested op flipped by its
// layout. Matrix views go straight in (leading dimensions, batch strides, stride-0 broadcast batches): no
// copy where the layout is expressible. Algorithms come from cuBLASLt's heuristic once per (shape, dtype,
// layout) and are cached; each stream has one workspace. For large products the heuristic's offers are timed
// once on the call's own operands and the fastest kept among those that give the first offer's bits, so the
// results never depend on the choice (WICK_GEMM_TUNE=0 keeps the first offer).
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "backend/cuda/cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/runtime.h"
#include "wick/cuda.h"
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

constexpr int kOffers = 8;                   // heuristic offers considered for tuning
constexpr double kTunedProducts = 1u << 31;  // m·n·k from which a product is tuned (~4 GFLOP, tens of µs)
constexpr size_t kTunedScratchBytes = size_t{1} << 30;  // at most this much scratch output for tuning

bool tuning_enabled() {
  const char* value = std::getenv("WICK_GEMM_TUNE");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

// Mean time of `rounds` runs of `run` on the device's current stream, in ms.
template <typename F>
float time_runs(int device, int rounds, F&& run) {
  Event start(device), stop(device);
  start.record();
  for (int r = 0; r < rounds; ++r) run();
  stop.record();
  stop.synchronize();
  return stop.elapsed_ms_since(start) / static_cast<float>(rounds);
}

// Of the offers, the fastest whose output has the first offer's bits. run(algo, out) computes the product
// into `out`, laid out as C and `bytes` long: C itself where beta = 0 (the final run overwrites it), else a
// zeroed scratch matrix, and a second scratch for the others.
template <typename Run>
cublasLtMatmulAlgo_t fastest_same_bits(const cublasLtMatmulHeuristicResult_t* offers, int count, void* c,
                                       bool beta, DType dtype, size_t bytes, Device device, Run&& run) {
  // Whole 256-byte blocks, so the second scratch matrix starts as aligned as the first.
  const int64_t elements = static_cast<int64_t>((bytes + 255) / 256 * 256 / dtype_size(dtype));
  const Tensor scratch = Tensor::zeros({beta ? 2 * elements : elements}, dtype, device);
  void* first = beta ? scratch.narrow(0, elements, elements).data_ptr() : c;
  void* other = scratch.data_ptr();
  run(offers[0].algo, first);
  cublasLtMatmulAlgo_t best = offers[0].algo;
  float best_ms = time_runs(device.index, 3, [&] { run(offers[0].algo, other); });
  for (int i = 1; i < count; ++i) {
    if (offers[i].state != CUBLAS_STATUS_SUCCESS) continue;
    if (beta) scratch.narrow(0, 0, elements).fill_(0.0);
    run(offers[i].algo, other);
    if (!same_bytes(first, other, bytes, device)) continue;
    const float ms = time_runs(device.index, 3, [&] { run(offers[i].algo, other); });
    if (ms < best_ms) best = offers[i].algo, best_ms = ms;
  }
  return best;
}

}  // namespace

void clear_gemm_algorithms() {
  std::lock_guard lock(mutex);
  algorithms.clear();
}

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
  const double alpha64 = options.alpha, beta64 = options.beta;
  const float alpha32 = static_cast<float>(options.alpha), beta32 = static_cast<float>(options.beta);
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : static_cast<const void*>(&alpha32);
  const void* beta = f64 ? static_cast<const void*>(&beta64) : static_cast<const void*>(&beta32);
  PerDevice* per_device;
  const Tensor* workspace;
  const auto run = [&](const cublasLtMatmulAlgo_t& chosen, void* d) {
    check(cublasLtMatmul(per_device->handle->get(), desc.get(), alpha, B.view.data, first->get(), A.view.data,
                         second->get(), beta, d, out->get(), d, out->get(), &chosen, workspace->data_ptr(),
                         kWorkspaceBytes, stream),
          "gemm", "cublasLtMatmul");
  };
  cublasLtMatmulAlgo_t algo;
  {
    std::lock_guard lock(mutex);
    per_device = &devices[device];
    if (!per_device->handle) per_device->handle = std::make_unique<LtHandle>();
    Tensor& stream_workspace = per_device->workspaces[stream];
    if (!stream_workspace.defined())
      stream_workspace = Tensor::empty({static_cast<int64_t>(kWorkspaceBytes)}, DType::u8, c.device());
    workspace = &stream_workspace;
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
    if (found != algorithms.end()) {
      algo = found->second;
    } else {
      LtPreference preference(kWorkspaceBytes);
      cublasLtMatmulHeuristicResult_t offers[kOffers] = {};
      int count = 0;
      const cublasStatus_t status =
          cublasLtMatmulAlgoGetHeuristic(per_device->handle->get(), desc.get(), first->get(), second->get(),
                                         out->get(), out->get(), preference.get(), kOffers, offers, &count);
      if (options.bias_gradient.defined() && (status != CUBLAS_STATUS_SUCCESS || count == 0)) return false;
      check(status, "gemm", "cublasLtMatmulAlgoGetHeuristic");
      if (count == 0)
        fail("gemm", "cuBLASLt has no algorithm for {}×{}×{} (batch {}) with a={}, c={}", m, n, k, batch,
             a.str(), c.str());
      // Nothing is timed while a graph is being captured; the first offer serves until a later call.
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      check(cudaStreamIsCapturing(stream, &capture), "gemm", "cudaStreamIsCapturing");
      const bool tune =
          capture == cudaStreamCaptureStatusNone && count > 1 && batch == 1 &&
          !options.bias_gradient.defined() &&
          static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kTunedProducts &&
          tuning_enabled();
      algo = offers[0].algo;
      const size_t bytes = static_cast<size_t>((m - 1) * C.ld + n) * dtype_size(c.dtype());
      if (tune && bytes <= kTunedScratchBytes)
        algo =
            fastest_same_bits(offers, count, C.data, options.beta != 0.0, c.dtype(), bytes, c.device(), run);
      if (capture == cudaStreamCaptureStatusNone) algorithms.emplace(key, algo);
    }
  }
  run(algo, C.data);
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
