// Times every algorithm cuBLASLt's heuristic offers for bf16 GEMM shapes, as wick calls them (row-major
// C[M×N] = A[M×K]·op(B), f32 accumulation, computed column-major with B first, 32 MiB workspace), and says
// whether each gives the same bits as the heuristic's first choice, which wick takes. For choosing
// algorithms by shape.
//
// Usage: gemm_survey M N K t|n [M N K t|n ...]   (t: B is [N×K] and used transposed; n: B is [K×N])
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "gemm_survey: %s failed: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

void check_lt(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "gemm_survey: %s failed: status %d\n", what, static_cast<int>(status));
    std::exit(1);
  }
}

struct Shape {
  int64_t m, n, k;
  bool transpose_b;
};

// A device buffer of `count` bf16 values drawn from N(0, scale²) with a fixed seed.
void* random_matrix(int64_t count, double scale, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  std::vector<__nv_bfloat16> host(static_cast<size_t>(count));
  for (auto& v : host) v = __float2bfloat16(normal(gen));
  void* device = nullptr;
  check_cuda(cudaMalloc(&device, host.size() * sizeof(__nv_bfloat16)), "cudaMalloc");
  check_cuda(cudaMemcpy(device, host.data(), host.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice),
             "cudaMemcpy");
  return device;
}

void survey(cublasLtHandle_t handle, const Shape& s, void* workspace, size_t workspace_bytes) {
  void* a = random_matrix(s.m * s.k, 1.0, 1);
  void* b = random_matrix(s.n * s.k, 1.0 / std::sqrt(static_cast<double>(s.k)), 2);
  void* c = nullptr;
  const size_t c_bytes = static_cast<size_t>(s.m * s.n) * sizeof(__nv_bfloat16);
  check_cuda(cudaMalloc(&c, c_bytes), "cudaMalloc");
  // Column-major: Cᵀ[N×M] = op(B)ᵀ·Aᵀ. B stored [N×K] row-major reads as Bᵀ [K×N] column-major (ld K).
  cublasLtMatmulDesc_t desc;
  check_lt(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = s.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)),
           "set TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)),
           "set TRANSB");
  cublasLtMatrixLayout_t first, second, out;
  if (s.transpose_b) {
    check_lt(cublasLtMatrixLayoutCreate(&first, CUDA_R_16BF, s.k, s.n, s.k), "layout B");
  } else {
    check_lt(cublasLtMatrixLayoutCreate(&first, CUDA_R_16BF, s.n, s.k, s.n), "layout B");
  }
  check_lt(cublasLtMatrixLayoutCreate(&second, CUDA_R_16BF, s.k, s.m, s.k), "layout A");
  check_lt(cublasLtMatrixLayoutCreate(&out, CUDA_R_16BF, s.n, s.m, s.n), "layout C");
  cublasLtMatmulPreference_t preference;
  check_lt(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
  check_lt(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &workspace_bytes, sizeof(workspace_bytes)),
           "set workspace");
  std::vector<cublasLtMatmulHeuristicResult_t> results(16);
  int count = 0;
  check_lt(cublasLtMatmulAlgoGetHeuristic(handle, desc, first, second, out, out, preference,
                                          static_cast<int>(results.size()), results.data(), &count),
           "cublasLtMatmulAlgoGetHeuristic");
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<unsigned char> reference(c_bytes), result(c_bytes);
  const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
  for (int i = 0; i < count; ++i) {
    const auto run = [&] {
      return cublasLtMatmul(handle, desc, &alpha, b, first, a, second, &beta, c, out, c, out,
                            &results[i].algo, workspace, workspace_bytes, nullptr);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) {
      std::printf("%lld %lld %lld %c  algo %2d  failed to run\n", static_cast<long long>(s.m),
                  static_cast<long long>(s.n), static_cast<long long>(s.k), s.transpose_b ? 't' : 'n', i);
      continue;
    }
    for (int w = 0; w < 3; ++w) check_lt(run(), "cublasLtMatmul");
    std::vector<float> times;
    for (int r = 0; r < 20; ++r) {
      check_cuda(cudaEventRecord(start), "cudaEventRecord");
      check_lt(run(), "cublasLtMatmul");
      check_cuda(cudaEventRecord(stop), "cudaEventRecord");
      check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    const float median = times[times.size() / 2];
    check_cuda(cudaMemcpy(i == 0 ? reference.data() : result.data(), c, c_bytes, cudaMemcpyDeviceToHost),
               "cudaMemcpy");
    const bool same = i == 0 || std::memcmp(reference.data(), result.data(), c_bytes) == 0;
    std::printf("%lld %lld %lld %c  algo %2d  %.4f ms  %6.1f TFLOP/s  %s\n", static_cast<long long>(s.m),
                static_cast<long long>(s.n), static_cast<long long>(s.k), s.transpose_b ? 't' : 'n', i,
                median, flops / (median * 1e-3) / 1e12, same ? "same bits" : "other bits");
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cublasLtMatmulPreferenceDestroy(preference);
  cublasLtMatrixLayoutDestroy(first);
  cublasLtMatrixLayoutDestroy(second);
  cublasLtMatrixLayoutDestroy(out);
  cublasLtMatmulDescDestroy(desc);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || (argc - 1) % 4 != 0) {
    std::fprintf(stderr, "usage: gemm_survey M N K t|n [M N K t|n ...]\n");
    return 2;
  }
  std::vector<Shape> shapes;
  for (int i = 1; i + 3 < argc; i += 4) {
    const Shape s{std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2]),
                  std::strcmp(argv[i + 3], "t") == 0};
    if (s.m <= 0 || s.n <= 0 || s.k <= 0 ||
        (std::strcmp(argv[i + 3], "t") != 0 && std::strcmp(argv[i + 3], "n") != 0)) {
      std::fprintf(stderr, "gemm_survey: bad shape '%s %s %s %s' (expected positive M N K and t or n)\n",
                   argv[i], argv[i + 1], argv[i + 2], argv[i + 3]);
      return 2;
    }
    shapes.push_back(s);
  }
  cublasLtHandle_t handle;
  check_lt(cublasLtCreate(&handle), "cublasLtCreate");
  const size_t workspace_bytes = 32u << 20;
  void* workspace = nullptr;
  check_cuda(cudaMalloc(&workspace, workspace_bytes), "cudaMalloc");
  for (const Shape& s : shapes) survey(handle, s, workspace, workspace_bytes);
  cudaFree(workspace);
  cublasLtDestroy(handle);
  return 0;
}
