// SwiGLU's backward fused with the LoRA weight gradients that read its tensors (see
// ops::swiglu_lora_backward). A block owns a strip of 128 columns of the [rows, cols] MLP tensors and a range
// of rows. For each tile of 32 rows it reads gate, up and dh once, forms dgate and dup (written out) and h =
// silu(gate)·up (not read: formed again, with the forward's bits), and puts the three tiles and the tiles of
// xa_gate, xa_up and dxa_down in shared memory; each warp then adds one 16-column slice of
//   dgateᵀ·xa_gate,  dupᵀ·xa_up,  hᵀ·dxa_down
// on the tensor cores (mma.sync, f32 accumulators). The next tile's loads are in flight during the products.
// Each block writes its f32 partial sums; a second kernel adds a column's partials in the order of the row
// ranges, so the result does not depend on timing.
#include <algorithm>

#include "backend/cuda/activation.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/flash_attention.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

constexpr int kCols = 128;  // a block's column strip
constexpr int kRows = 32;   // rows per tile
constexpr int kThreads = 256;
constexpr int kProducts = 3;  // dgateᵀ·xa_gate, dupᵀ·xa_up, hᵀ·dxa_down

template <typename T>
struct SwigluLoraArgs {
  const T* wide_in[3];  // gate, up, dh: [rows, cols]
  int64_t wide_in_stride[3];
  const T* thin_in[3];  // xa_gate, xa_up, dxa_down: [rows, rank]
  int64_t thin_in_stride[3];
  T* wide_out[2];  // dgate, dup
  int64_t wide_out_stride[2];
  float* partial;  // [splits, 3, cols, rank]
  int rows, cols, rows_per_split;
};

// Row-major shared tiles of `Rank` columns padded to Rank + 8, so an ldmatrix's eight row addresses fall in
// distinct banks.
template <int Rank>
constexpr int kThinPitch = Rank + 8;

// Address, for lane `lane`, of the ldmatrix.x4.trans that loads the A operand of rows m0 .. m0+15, k 16·kk ..
// 16·kk+15, where A[m][k] = tile[k][m]: the 128-column tile transposed (columns as m, rows as k).
__device__ __forceinline__ uint32_t transposed_a_address(uint32_t base, int m0, int kk, int lane) {
  const int row = kk * 16 + (lane & 7) + ((lane >> 4) << 3);
  const int chunk = (m0 >> 3) + ((lane >> 3) & 1);
  return base + 2 * flash::swizzled<kCols>(row, chunk);
}

// ... the B operands of two 8-column n-tiles, B[k][n] = thin[16·kk + k][n0 + n], loaded with .trans.
template <int Rank>
__device__ __forceinline__ uint32_t thin_b_address(uint32_t base, int kk, int n0, int lane) {
  const int row = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
  const int chunk = (n0 >> 3) + (lane >> 4);
  return base + 2 * (row * kThinPitch<Rank> + chunk * 8);
}

template <typename T, int Rank>
__global__ void __launch_bounds__(kThreads) swiglu_lora_backward_kernel(SwigluLoraArgs<T> a) {
  constexpr int kWideVectors = kRows * kCols / 8 / kThreads;  // per thread and tensor
  constexpr int kThinChunks = Rank / 8;
  constexpr int kThinVectors = (kProducts * kRows * kThinChunks + kThreads - 1) / kThreads;
  __shared__ alignas(16) T wide[kProducts][kRows * kCols];
  __shared__ alignas(16) T thin[kProducts][kRows * kThinPitch<Rank>];

  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int col0 = static_cast<int>(blockIdx.x) * kCols;
  const int row_begin = static_cast<int>(blockIdx.y) * a.rows_per_split;
  const int row_end = min(a.rows, row_begin + a.rows_per_split);

  uint4 wide_raw[kWideVectors][3], thin_raw[kThinVectors];
  // Loads the tile at row0 into registers; what lies past the rows or columns reads as zero.
  const auto load = [&](int row0) {
#pragma unroll
    for (int i = 0; i < kWideVectors; ++i) {
      const int v = tid + i * kThreads, row = row0 + v / (kCols / 8), col = col0 + (v % (kCols / 8)) * 8;
      const bool valid = row < row_end && col < a.cols;
#pragma unroll
      for (int t = 0; t < 3; ++t)
        wide_raw[i][t] = valid
                             ? *reinterpret_cast<const uint4*>(a.wide_in[t] + row * a.wide_in_stride[t] + col)
                             : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int i = 0; i < kThinVectors; ++i) {
      const int v = tid + i * kThreads;
      const int which = v / (kRows * kThinChunks), within = v % (kRows * kThinChunks);
      const int row = row0 + within / kThinChunks, chunk = within % kThinChunks;
      const bool valid = which < kProducts && row < row_end;
      thin_raw[i] =
          valid
              ? *reinterpret_cast<const uint4*>(a.thin_in[which] + row * a.thin_in_stride[which] + chunk * 8)
              : make_uint4(0, 0, 0, 0);
    }
  };

  float acc[kProducts][Rank / 8][4] = {};
  if (row_begin < row_end) load(row_begin);
  for (int row0 = row_begin; row0 < row_end; row0 += kRows) {
    // dgate = dh·up·silu'(gate), dup = dh·silu(gate) as ops::swiglu_backward forms them, h = silu(gate)·up
    // as ops::swiglu does.
#pragma unroll
    for (int i = 0; i < kWideVectors; ++i) {
      const int v = tid + i * kThreads, r = v / (kCols / 8), chunk = v % (kCols / 8);
      const int row = row0 + r, col = col0 + chunk * 8;
      const T* g = reinterpret_cast<const T*>(&wide_raw[i][0]);
      const T* u = reinterpret_cast<const T*>(&wide_raw[i][1]);
      const T* d = reinterpret_cast<const T*>(&wide_raw[i][2]);
      float dg[8], du[8], h[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float ge = to_float(g[e]), ue = to_float(u[e]), de = to_float(d[e]);
        const float act = activation(Unary::silu, ge);
        dg[e] = de * ue * activation_derivative(Unary::silu, ge);
        du[e] = de * act;
        h[e] = act * ue;
      }
      const int slot = flash::swizzled<kCols>(r, chunk);
      store_vector(&wide[0][slot], 0, dg);
      store_vector(&wide[1][slot], 0, du);
      store_vector(&wide[2][slot], 0, h);
      if (row < row_end && col < a.cols) {
        *reinterpret_cast<uint4*>(a.wide_out[0] + row * a.wide_out_stride[0] + col) =
            *reinterpret_cast<const uint4*>(&wide[0][slot]);
        *reinterpret_cast<uint4*>(a.wide_out[1] + row * a.wide_out_stride[1] + col) =
            *reinterpret_cast<const uint4*>(&wide[1][slot]);
      }
    }
#pragma unroll
    for (int i = 0; i < kThinVectors; ++i) {
      const int v = tid + i * kThreads;
      const int which = v / (kRows * kThinChunks), within = v % (kRows * kThinChunks);
      if (which < kProducts)
        *reinterpret_cast<uint4*>(
            &thin[which][(within / kThinChunks) * kThinPitch<Rank> + (within % kThinChunks) * 8]) =
            thin_raw[i];
    }
    __syncthreads();
    if (row0 + kRows < row_end) load(row0 + kRows);
#pragma unroll
    for (int kk = 0; kk < kRows / 16; ++kk) {
#pragma unroll
      for (int p = 0; p < kProducts; ++p) {
        uint32_t op_a[4];
        flash::ldmatrix_x4_trans(op_a,
                                 transposed_a_address(flash::smem_address(wide[p]), warp * 16, kk, lane));
#pragma unroll
        for (int np = 0; np < Rank / 16; ++np) {
          uint32_t op_b[4];
          flash::ldmatrix_x4_trans(op_b,
                                   thin_b_address<Rank>(flash::smem_address(thin[p]), kk, np * 16, lane));
          flash::mma_16816<T>(acc[p][2 * np], op_a, op_b[0], op_b[1]);
          flash::mma_16816<T>(acc[p][2 * np + 1], op_a, op_b[2], op_b[3]);
        }
      }
    }
    __syncthreads();
  }

  // Lane (g, t) holds columns col0 + 16·warp + g (+8) and ranks 8n + 2t (+1) of each product.
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int p = 0; p < kProducts; ++p) {
    float* out = a.partial + (static_cast<int64_t>(blockIdx.y) * kProducts + p) * a.cols * Rank;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int col = col0 + warp * 16 + g + half * 8;
      if (col >= a.cols) continue;
#pragma unroll
      for (int n = 0; n < Rank / 8; ++n)
        *reinterpret_cast<float2*>(out + static_cast<int64_t>(col) * Rank + n * 8 + 2 * t) =
            make_float2(acc[p][n][2 * half], acc[p][n][2 * half + 1]);
    }
  }
}

// Adds each value's partial sums in the order of the row ranges: db_gate and db_up ([cols, rank]) take
// scale times the sum, da_down ([rank, cols]) the sum of the transposed product; with `accumulate` added to
// what they hold.
__global__ void swiglu_lora_finish_kernel(const float* partial, int splits, int cols, int rank, float scale,
                                          float* db_gate, float* db_up, float* da_down, bool accumulate) {
  const int64_t per_product = static_cast<int64_t>(cols) * rank;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < kProducts * per_product;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int p = static_cast<int>(i / per_product);
    const int64_t within = i % per_product;
    float sum = 0;
    for (int s = 0; s < splits; ++s)
      sum += partial[(static_cast<int64_t>(s) * kProducts + p) * per_product + within];
    const int64_t col = within / rank, r = within % rank;
    float* out = p == 0 ? db_gate + within : p == 1 ? db_up + within : da_down + r * cols + col;
    const float value = p < 2 ? scale * sum : sum;
    *out = accumulate ? *out + value : value;
  }
}

bool rows_of_vectors(const Tensor& t) {
  return t.dim() == 2 && t.stride(1) == 1 && t.stride(0) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// Blocks of the kernel that fit on one multiprocessor at once.
template <typename T, int Rank>
int resident_blocks() {
  static const int blocks = [] {
    int n = 0;
    check(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, swiglu_lora_backward_kernel<T, Rank>, kThreads, 0),
        "swiglu_lora_backward", "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    return std::max(n, 1);
  }();
  return blocks;
}

template <typename T, int Rank>
void launch(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
            const Tensor& xa_up, const Tensor& dxa_down, const Tensor& dgate, const Tensor& dup,
            const Tensor& partial_out, int rows_per_split, int splits) {
  SwigluLoraArgs<T> args{};
  const Tensor* wide_in[3] = {&gate, &up, &dh};
  const Tensor* thin_in[3] = {&xa_gate, &xa_up, &dxa_down};
  for (int i = 0; i < 3; ++i) {
    args.wide_in[i] = ptr<const T>(*wide_in[i]);
    args.wide_in_stride[i] = wide_in[i]->stride(0);
    args.thin_in[i] = ptr<const T>(*thin_in[i]);
    args.thin_in_stride[i] = thin_in[i]->stride(0);
  }
  args.wide_out[0] = ptr<T>(dgate);
  args.wide_out[1] = ptr<T>(dup);
  args.wide_out_stride[0] = dgate.stride(0);
  args.wide_out_stride[1] = dup.stride(0);
  args.partial = ptr<float>(partial_out);
  args.rows = static_cast<int>(gate.size(0));
  args.cols = static_cast<int>(gate.size(1));
  args.rows_per_split = rows_per_split;
  const dim3 grid(static_cast<unsigned>(ceil_div(args.cols, kCols)), static_cast<unsigned>(splits));
  swiglu_lora_backward_kernel<T, Rank><<<grid, kThreads, 0, stream_of(gate)>>>(args);
}

}  // namespace

bool swiglu_lora_backward_takes(const Tensor& gate, int64_t rank) {
  return (gate.dtype() == DType::bf16 || gate.dtype() == DType::f16) &&
         (rank == 16 || rank == 32 || rank == 64) && gate.dim() == 2 && gate.size(1) % 8 == 0 &&
         gate.size(0) < (int64_t{1} << 30) && gate.size(1) < (int64_t{1} << 30) && rows_of_vectors(gate);
}

bool swiglu_lora_backward_fits(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                               const Tensor& xa_up, const Tensor& dxa_down, const Tensor& dgate,
                               const Tensor& dup, const Tensor& db_gate, const Tensor& db_up,
                               const Tensor& da_down) {
  if (!swiglu_lora_backward_takes(gate, xa_gate.size(-1))) return false;
  for (const Tensor* t : {&up, &dh, &xa_gate, &xa_up, &dxa_down, &dgate, &dup})
    if (!rows_of_vectors(*t)) return false;
  for (const Tensor* t : {&db_gate, &db_up, &da_down})
    if (t->dtype() != DType::f32 || !t->is_contiguous()) return false;
  return true;
}

void swiglu_lora_backward(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                          const Tensor& xa_up, const Tensor& dxa_down, double scale, const Tensor& dgate,
                          const Tensor& dup, const Tensor& db_gate, const Tensor& db_up,
                          const Tensor& da_down, bool accumulate) {
  const int64_t rows = gate.size(0), cols = gate.size(1), rank = xa_gate.size(1);
  if (cols == 0) return;
  const auto run = [&](auto tag, auto rank_tag) {
    using T = decltype(tag);
    constexpr int Rank = decltype(rank_tag)::value;
    // One wave: as many row ranges per column strip as let every block be resident at once (more would
    // leave a tail wave, and more partial sums to add).
    const int64_t strips = ceil_div(cols, kCols), tiles = ceil_div(rows, kRows);
    const int64_t slots = int64_t{resident_blocks<T, Rank>()} * multiprocessors(gate.device().index);
    const int64_t wanted = std::clamp<int64_t>(slots / strips, 1, std::max<int64_t>(tiles, 1));
    const int64_t rows_per_split = ceil_div(std::max<int64_t>(tiles, 1), wanted) * kRows;
    const int64_t splits = ceil_div(std::max<int64_t>(rows, 1), rows_per_split);
    const Tensor partial = Tensor::empty({splits, kProducts, cols, rank}, DType::f32, gate.device());
    launch<T, Rank>(gate, up, dh, xa_gate, xa_up, dxa_down, dgate, dup, partial,
                    static_cast<int>(rows_per_split), static_cast<int>(splits));
    check_launch("swiglu_lora_backward");
    const int64_t outputs = kProducts * cols * rank;
    swiglu_lora_finish_kernel<<<static_cast<unsigned>(std::min<int64_t>(ceil_div(outputs, 256), 4096)), 256,
                                0, stream_of(gate)>>>(
        ptr<const float>(partial), static_cast<int>(splits), static_cast<int>(cols), Rank,
        static_cast<float>(scale), ptr<float>(db_gate), ptr<float>(db_up), ptr<float>(da_down), accumulate);
    check_launch("swiglu_lora_backward");
  };
  const auto with_rank = [&](auto tag) {
    if (rank == 16)
      run(tag, std::integral_constant<int, 16>{});
    else if (rank == 32)
      run(tag, std::integral_constant<int, 32>{});
    else
      run(tag, std::integral_constant<int, 64>{});
  };
  if (gate.dtype() == DType::bf16)
    with_rank(__nv_bfloat16{});
  else
    with_rank(__half{});
}

}  // namespace wick::cuda
