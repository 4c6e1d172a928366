// Every CUDA op and backward against the CPU op run in f64 on the same (rounded) inputs: fresh random data,
// non-contiguous inputs, odd sizes. Skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

#include <algorithm>

#include "support/cuda_test.h"

namespace wick::test {
namespace {

class Cuda : public CudaTest {
 protected:
  // Random inputs already rounded to the tested dtype, as f64 on the cpu.
  Tensor input(const Shape& shape, double std = 1.0) {
    return randn(gen, shape, dtype(), std).to(DType::f64);
  }
  Tensor on_gpu(const Tensor& t) { return t.to(dtype()).to(gpu); }
  // Relative error of a GPU result against the f64 cpu reference.
  void expect_close(const Tensor& gpu_result, const Tensor& reference, double scale = 1.0) {
    ASSERT_EQ(gpu_result.device(), gpu);
    ASSERT_EQ(gpu_result.shape(), reference.shape());
    const double error = relative_error(gpu_result.to(Device::cpu()).to(DType::f64), reference);
    EXPECT_LE(error, scale * tolerance(dtype())) << "dtype " << dtype_name(dtype());
  }
};

INSTANTIATE_TEST_SUITE_P(Dtypes, Cuda, ::testing::Values(DType::f32, DType::bf16, DType::f16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(Cuda, CopyConvertAndStridedViews) {
  const Tensor x = input({5, 7, 3});
  const Tensor g = on_gpu(x);
  expect_close(g.permute({2, 0, 1}).contiguous(), x.permute({2, 0, 1}).contiguous(), 0.0);
  expect_close(g.slice(1, 1, 7, 2).to(DType::f32), x.slice(1, 1, 7, 2), 0.0);
  Tensor target = Tensor::full({3, 5, 7}, std::nan(""), dtype(), gpu);
  target.copy_(g.permute({2, 0, 1}));
  expect_close(target, x.permute({2, 0, 1}).contiguous(), 0.0);
}

// Column blocks of wider matrices on either side (one 2-D memcpy), and zero / non-zero / negative-zero fills
// of a block: the elements outside the block keep their values.
TEST_P(Cuda, CopyAndFillColumnBlocks) {
  const Tensor x = input({9, 13});
  const Tensor wide = input({9, 21});
  Tensor g = on_gpu(wide);
  g.narrow(1, 5, 13).copy_(on_gpu(x));
  Tensor expected = wide.clone();
  expected.narrow(1, 5, 13).copy_(x);
  expect_close(g, expected, 0.0);
  const Tensor block = Tensor::empty({9, 4}, dtype(), gpu);
  block.copy_(g.narrow(1, 3, 4));
  expect_close(block, expected.narrow(1, 3, 4).contiguous(), 0.0);
  for (double value : {0.0, 1.5, -0.0}) {
    g.narrow(1, 2, 6).fill_(value);
    expected.narrow(1, 2, 6).fill_(value);
    expect_close(g, expected, 0.0);
    const std::vector<double> filled = g.narrow(1, 2, 6).to(Device::cpu()).to(DType::f64).to_vector<double>();
    EXPECT_EQ(std::signbit(filled.front()), std::signbit(value)) << value;
  }
}

TEST_P(Cuda, GemmAllTransposesBatchedAndBroadcast) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensor a = input(ta ? Shape{3, 33, 17} : Shape{3, 17, 33});
      const Tensor b = input(tb ? Shape{45, 33} : Shape{33, 45});
      const Tensor c0 = input({3, 17, 45});
      ops::GemmOptions options;
      options.transpose_a = ta;
      options.transpose_b = tb;
      options.alpha = 0.75;
      options.beta = 0.5;
      Tensor c = on_gpu(c0);
      ops::gemm(on_gpu(a), on_gpu(b), c, options);
      Tensor reference = c0.clone();
      ops::gemm(a, b, reference, options);
      expect_close(c, reference, 2.0);
    }
  }
}

// Large products are timed among cuBLASLt's offers once per shape; the one kept gives the first offer's bits
// (WICK_GEMM_TUNE=0 keeps the first offer), whether beta reads C or not, and the tuning runs leave C alone.
TEST_P(Cuda, TunedGemmKeepsTheFirstOffersBits) {
  const Tensor a = input({2048, 1024}), b = input({1024, 1024}), c0 = input({2048, 1024});
  for (double beta : {0.0, 1.0}) {
    SCOPED_TRACE(beta);
    ops::GemmOptions options;
    options.transpose_b = true;
    options.beta = beta;
    std::vector<std::vector<double>> results;
    for (const char* tune : {"0", "1"}) {
      setenv("WICK_GEMM_TUNE", tune, 1);
      cuda::clear_gemm_algorithms();
      Tensor c = on_gpu(c0);
      ops::gemm(on_gpu(a), on_gpu(b), c, options);
      results.push_back(c.to(Device::cpu()).to(DType::f64).to_vector<double>());
      if (results.size() == 2) {
        Tensor reference = c0.clone();
        ops::gemm(a, b, reference, options);
        expect_close(c, reference, 2.0);
      }
    }
    unsetenv("WICK_GEMM_TUNE");
    EXPECT_TRUE(results[0] == results[1]);
  }
  cuda::clear_gemm_algorithms();
}

TEST_P(Cuda, GemmNonContiguousOperandsAndOutput) {
  const Tensor a_full = input({40, 24});
  const Tensor b_stored = input({29, 24});  // b = b_storedᵀ, a column-major [24, 29] view
  Tensor c = Tensor::full({29, 19}, std::nan(""), dtype(), gpu).transpose(0, 1);  // column-major [19, 29]
  ops::gemm(on_gpu(a_full).narrow(0, 3, 19), on_gpu(b_stored).transpose(0, 1), c);
  expect_close(c, ops::matmul(a_full.narrow(0, 3, 19), b_stored.transpose(0, 1)), 2.0);
}

TEST_P(Cuda, Softmax) {
  const Tensor x = input({3, 5, 37, 129}, 6.0);
  ops::SoftmaxMask mask;
  mask.causal = true;
  mask.causal_offset = 92;
  mask.lengths = Tensor::from_vector<int64_t>({129, 50, 0}, {3});
  ops::SoftmaxMask gpu_mask = mask;
  gpu_mask.lengths = mask.lengths.to(gpu);
  expect_close(ops::softmax(on_gpu(x), -1, gpu_mask), ops::softmax(x, -1, mask));
  expect_close(ops::softmax(on_gpu(x), 1), ops::softmax(x, 1));
  expect_close(ops::log_softmax(on_gpu(x)), ops::log_softmax(x));
  const Tensor y = ops::softmax(x), dy = input(x.shape());
  expect_close(ops::softmax_backward(on_gpu(y), on_gpu(dy)), ops::softmax_backward(y, dy), 2.0);
  const Tensor ly = ops::log_softmax(x);
  expect_close(ops::log_softmax_backward(on_gpu(ly), on_gpu(dy)), ops::log_softmax_backward(ly, dy), 2.0);
}

TEST_P(Cuda, Norms) {
  const Tensor x = non_contiguous(input({67, 131})), r = input({67, 131}), w = input({131}), b = input({131});
  const Tensor dy = input({67, 131});
  expect_close(ops::rms_norm(on_gpu(x), on_gpu(w), 1e-6), ops::rms_norm(x, w, 1e-6));
  const auto fused = ops::rms_norm_residual(on_gpu(x), on_gpu(r), on_gpu(w), 1e-6);
  const Tensor sum = ops::add(x, r).to(dtype()).to(DType::f64);  // the stored sum is rounded to dtype
  expect_close(fused.sum, sum);
  expect_close(fused.y, ops::rms_norm(sum, w, 1e-6));
  // Into the left columns of a wider matrix: 131 columns (the plain kernel) and 128 (the row-cached one).
  for (int64_t cols : {131, 128}) {
    const Tensor xs = input({67, cols}), rs = input({67, cols}), ws = input({cols});
    const Tensor wide = Tensor::zeros({67, cols + 8}, dtype(), gpu);
    expect_close(ops::rms_norm(on_gpu(xs), on_gpu(ws), 1e-6, wide.narrow(1, 0, cols)),
                 ops::rms_norm(xs, ws, 1e-6));
    const auto into =
        ops::rms_norm_residual(on_gpu(xs), on_gpu(rs), on_gpu(ws), 1e-6, wide.narrow(1, 0, cols));
    expect_close(into.y, ops::rms_norm(ops::add(xs, rs).to(dtype()).to(DType::f64), ws, 1e-6));
    expect_close(wide.narrow(1, cols, 8), Tensor::zeros({67, 8}, DType::f64), 0.0);
  }
  const auto g = ops::rms_norm_backward(on_gpu(x), on_gpu(w), on_gpu(dy), 1e-6);
  const auto ref = ops::rms_norm_backward(x, w, dy, 1e-6);
  expect_close(g.dx, ref.dx, 2.0);
  expect_close(g.dweight, ref.dweight, 2.0);
  expect_close(ops::layer_norm(on_gpu(x), on_gpu(w), on_gpu(b), 1e-5), ops::layer_norm(x, w, b, 1e-5));
  const auto lg = ops::layer_norm_backward(on_gpu(x), on_gpu(w), on_gpu(b), on_gpu(dy), 1e-5);
  const auto lr = ops::layer_norm_backward(x, w, b, dy, 1e-5);
  expect_close(lg.dx, lr.dx, 2.0);
  expect_close(lg.dweight, lr.dweight, 2.0);
  expect_close(lg.dbias, lr.dbias, 2.0);
}

TEST_P(Cuda, RopeBothStylesWithOffsetsAndPositions) {
  const Tensor x = input({2, 11, 3, 64});
  for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
    ops::RopeOptions options;
    options.style = style;
    options.position_offset = 1000;
    options.theta = 1e6;
    options.rotary_dims = 48;
    expect_close(ops::rope(on_gpu(x), options), ops::rope(x, options));
    expect_close(ops::rope_backward(on_gpu(x), options), ops::rope_backward(x, options));
    ops::RopeOptions explicit_positions = options;
    explicit_positions.positions = Tensor::from_vector<int64_t>(
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {2, 11});
    ops::RopeOptions gpu_positions = explicit_positions;
    gpu_positions.positions = explicit_positions.positions.to(gpu);
    expect_close(ops::rope(on_gpu(x), gpu_positions), ops::rope(x, explicit_positions));
  }
}

// Every dimension rotated, half-split, 16-byte rows: the vectorized kernel (16-bit types), over odd row
// counts and positions past the first thousand, forward and inverse.
TEST_P(Cuda, RopeFullRotaryRows) {
  // f32 takes the per-pair kernel (RopeBothStylesWithOffsetsAndPositions); its f32 angles at positions in the
  // tens of thousands are further from the f64 reference than f32's tolerance, as the reference's own are.
  if (dtype() == DType::f32) GTEST_SKIP() << "16-bit types only";
  for (int64_t dim : {16, 64, 128}) {
    const Tensor x = input({3, 7, 5, dim});
    ops::RopeOptions options;
    options.theta = 1e6;
    options.position_offset = 2041;
    expect_close(ops::rope(on_gpu(x), options), ops::rope(x, options));
    expect_close(ops::rope_backward(on_gpu(x), options), ops::rope_backward(x, options));
    ops::RopeOptions per_row = options;
    per_row.position_offset = 0;
    per_row.positions = rand_uniform({3, 7}, gen, 0, 30000, DType::f32).to(DType::i64);
    ops::RopeOptions gpu_positions = per_row;
    gpu_positions.positions = per_row.positions.to(gpu);
    expect_close(ops::rope(on_gpu(x), gpu_positions), ops::rope(x, per_row));
    // Heads read in place from a column block of a wider [tokens, columns] product (q within packed q/k/v).
    const Tensor wide = input({3 * 7, 5 * dim + 3 * 16});
    const Tensor block = on_gpu(wide).narrow(1, 16, 5 * dim).view({3, 7, 5, dim});
    EXPECT_FALSE(block.is_contiguous());
    const Tensor reference = wide.narrow(1, 16, 5 * dim).contiguous().view({3, 7, 5, dim});
    expect_close(ops::rope(block, options), ops::rope(reference, options));
    expect_close(ops::rope_backward(block, options), ops::rope_backward(reference, options));
    // And written into such a block (dq within packed dq/dk/dv), leaving the columns around it alone.
    const Tensor target = on_gpu(wide);
    ops::rope_backward(on_gpu(x), options, target.narrow(1, 16, 5 * dim).view({3, 7, 5, dim}));
    expect_close(target.narrow(1, 16, 5 * dim).view({3, 7, 5, dim}), ops::rope_backward(x, options));
    expect_close(target.narrow(1, 0, 16), wide.narrow(1, 0, 16), 0.0);
    expect_close(target.narrow(1, 16 + 5 * dim, 32), wide.narrow(1, 16 + 5 * dim, 32), 0.0);
  }
}

TEST_P(Cuda, ActivationsAndSwiglu) {
  const Tensor x = input({7, 333}, 3.0), u = input({7, 333}), dy = input({7, 333});
  expect_close(ops::silu(on_gpu(x)), ops::silu(x));
  expect_close(ops::gelu(on_gpu(x)), ops::gelu(x));
  expect_close(ops::gelu(on_gpu(x), ops::GeluApproximation::tanh),
               ops::gelu(x, ops::GeluApproximation::tanh));
  expect_close(ops::silu_backward(on_gpu(x), on_gpu(dy)), ops::silu_backward(x, dy));
  expect_close(ops::gelu_backward(on_gpu(x), on_gpu(dy)), ops::gelu_backward(x, dy));
  expect_close(ops::swiglu(on_gpu(x), on_gpu(u)), ops::swiglu(x, u));
  const auto g = ops::swiglu_backward(on_gpu(x), on_gpu(u), on_gpu(dy));
  const auto r = ops::swiglu_backward(x, u, dy);
  expect_close(g.dgate, r.dgate);
  expect_close(g.dup, r.dup);
}

// Rows of whole 16-byte vectors take the vectorized kernels (16-bit types), also for the row-strided halves
// of a packed [gate; up] product.
TEST_P(Cuda, VectorizedActivationsSwigluAndAdd) {
  const Tensor x = input({7, 336}, 3.0), dy = input({7, 336}), packed = input({3, 5, 2 * 336});
  expect_close(ops::gelu(on_gpu(x)), ops::gelu(x));
  expect_close(ops::silu(on_gpu(x)), ops::silu(x));
  expect_close(ops::gelu_backward(on_gpu(x), on_gpu(dy)), ops::gelu_backward(x, dy));
  expect_close(ops::add(on_gpu(x), on_gpu(dy)), ops::add(x, dy));
  const Tensor gate = packed.narrow(2, 0, 336), up = packed.narrow(2, 336, 336);
  const Tensor g = on_gpu(packed);
  expect_close(ops::swiglu(g.narrow(2, 0, 336), g.narrow(2, 336, 336)), ops::swiglu(gate, up));
  expect_close(ops::swiglu(g.narrow(2, 336, 336), g.narrow(2, 0, 336)), ops::swiglu(up, gate));
  const Tensor dmlp = input({3, 5, 336});
  const auto grads = ops::swiglu_backward(g.narrow(2, 0, 336), g.narrow(2, 336, 336), on_gpu(dmlp));
  const auto reference = ops::swiglu_backward(gate, up, dmlp);
  expect_close(grads.dgate, reference.dgate);
  expect_close(grads.dup, reference.dup);
  // Into the halves of one buffer, with whole vectors (336) and without (333).
  for (int64_t cols : {336, 333}) {
    const Tensor gx = input({7, cols}, 3.0), ux = input({7, cols}), dx = input({7, cols});
    const Tensor both = Tensor::empty({7, 2 * cols}, dtype(), gpu);
    ops::swiglu_backward(on_gpu(gx), on_gpu(ux), on_gpu(dx),
                         {both.narrow(1, 0, cols), both.narrow(1, cols, cols)});
    const auto expected = ops::swiglu_backward(gx, ux, dx);
    expect_close(both.narrow(1, 0, cols), expected.dgate);
    expect_close(both.narrow(1, cols, cols), expected.dup);
  }
}

// The MLP's SwiGLU backward with its LoRA weight gradients: the 16-bit types run the fused kernel (forced, so
// it cannot fall back unnoticed), f32 the composition. Against the f64 cpu op: row counts that are not whole
// tiles or splits, column counts that are not whole strips, every rank the kernel takes, gate/up as halves
// of one product and the thin inputs as columns of a wider buffer, accumulation into held values (with h
// kept by the caller, which the composition reads). dgate and dup must be swiglu_backward's bits.
TEST_P(Cuda, SwigluLoraBackward) {
  const bool fused = dtype() != DType::f32;
  EXPECT_EQ(ops::swiglu_lora_backward_in_one_pass(Tensor::empty({64, 256}, dtype(), gpu), 16), fused);
  EXPECT_FALSE(ops::swiglu_lora_backward_in_one_pass(Tensor::empty({64, 256}, dtype(), gpu), 8));
  struct Case {
    int64_t rows, cols, rank;
  };
  for (const Case& k :
       {Case{1000, 328, 16}, Case{8192, 640, 16}, Case{37, 128, 32}, Case{300, 136, 64}, Case{5, 8, 16}}) {
    const Tensor packed = input({k.rows, 2 * k.cols}, 2.0), dh = input({k.rows, k.cols});
    const Tensor thin = input({k.rows, 24 + 2 * k.rank}), dxa_down = input({k.rows, k.rank});
    const Tensor start = input({3, k.cols * k.rank});
    const Tensor g = on_gpu(packed), t = on_gpu(thin);
    const Tensor gate = g.narrow(1, 0, k.cols), up = g.narrow(1, k.cols, k.cols);
    for (bool accumulate : {false, true}) {
      const Tensor out = Tensor::empty({k.rows, 2 * k.cols}, dtype(), gpu);
      const ops::SwigluGrads into{out.narrow(1, 0, k.cols), out.narrow(1, k.cols, k.cols)};
      const Tensor start_gpu = start.to(DType::f32).to(gpu);
      const ops::SwigluLoraGrads grads{start_gpu.select(0, 0).clone().view({k.cols, k.rank}),
                                       start_gpu.select(0, 1).clone().view({k.cols, k.rank}),
                                       start_gpu.select(0, 2).clone().view({k.rank, k.cols})};
      {
        const ForcedImplementation forced("WICK_IMPL_SWIGLU_LORA_BACKWARD", fused ? "cuda" : "composed");
        ops::swiglu_lora_backward(gate, up, on_gpu(dh), t.narrow(1, 24, k.rank),
                                  t.narrow(1, 24 + k.rank, k.rank), on_gpu(dxa_down), 0.5, into, grads,
                                  accumulate, accumulate ? ops::swiglu(gate, up) : Tensor());
      }
      const auto plain = ops::swiglu_backward(gate, up, on_gpu(dh));
      expect_close(into.dgate, plain.dgate.to(Device::cpu()).to(DType::f64), 0.0);
      expect_close(into.dup, plain.dup.to(Device::cpu()).to(DType::f64), 0.0);
      const Tensor reference = start.clone();
      const ops::SwigluLoraGrads expected{reference.select(0, 0).view({k.cols, k.rank}),
                                          reference.select(0, 1).view({k.cols, k.rank}),
                                          reference.select(0, 2).view({k.rank, k.cols})};
      const Tensor ref_out = Tensor::empty({k.rows, 2 * k.cols}, DType::f64);
      ops::swiglu_lora_backward(packed.narrow(1, 0, k.cols), packed.narrow(1, k.cols, k.cols), dh,
                                thin.narrow(1, 24, k.rank), thin.narrow(1, 24 + k.rank, k.rank), dxa_down,
                                0.5, {ref_out.narrow(1, 0, k.cols), ref_out.narrow(1, k.cols, k.cols)},
                                expected, accumulate);
      const std::string where = "rows " + std::to_string(k.rows) + ", cols " + std::to_string(k.cols) +
                                ", rank " + std::to_string(k.rank) + (accumulate ? ", accumulating" : "");
      SCOPED_TRACE(where);
      expect_close(grads.db_gate, expected.db_gate, 2.0);
      expect_close(grads.db_up, expected.db_up, 2.0);
      expect_close(grads.da_down, expected.da_down, 2.0);
    }
  }
}

// Rows of whole 16-byte vectors up to 2048 columns take the warp-per-row backward for a frozen weight.
TEST_P(Cuda, RmsNormBackwardFrozenWeight) {
  for (int64_t cols : {8, 896, 1000, 2048, 4096}) {
    const Tensor x = input({37, cols}, 2.0), w = input({cols}), dy = input({37, cols});
    const auto g = ops::rms_norm_backward(on_gpu(x), on_gpu(w), on_gpu(dy), 1e-6, false);
    EXPECT_FALSE(g.dweight.defined());
    expect_close(g.dx, ops::rms_norm_backward(x, w, dy, 1e-6, false).dx, 2.0);
    const Tensor residual = input({37, cols});
    expect_close(ops::rms_norm_backward(on_gpu(x), on_gpu(w), on_gpu(dy), 1e-6, false, on_gpu(residual)).dx,
                 ops::rms_norm_backward(x, w, dy, 1e-6, false, residual).dx, 2.0);
    expect_close(ops::rms_norm_backward(on_gpu(x), on_gpu(w), on_gpu(dy), 1e-6, true, on_gpu(residual)).dx,
                 ops::rms_norm_backward(x, w, dy, 1e-6, true, residual).dx, 2.0);
    // dy as the left columns of a wider matrix, read through its row stride.
    const Tensor wide = input({37, cols + 32});
    expect_close(
        ops::rms_norm_backward(on_gpu(x), on_gpu(w), on_gpu(wide).narrow(1, 0, cols), 1e-6, false).dx,
        ops::rms_norm_backward(x, w, wide.narrow(1, 0, cols), 1e-6, false).dx, 2.0);
  }
}

TEST_P(Cuda, LayerNormShortAndLongRows) {
  for (int64_t cols : {8, 384, 1000, 4096}) {
    const Tensor x = input({37, cols}, 2.0), w = input({cols}), b = input({cols});
    expect_close(ops::layer_norm(on_gpu(x), on_gpu(w), on_gpu(b), 1e-12), ops::layer_norm(x, w, b, 1e-12));
    expect_close(ops::layer_norm(on_gpu(x), Tensor(), Tensor(), 1e-5),
                 ops::layer_norm(x, Tensor(), Tensor(), 1e-5));
  }
}

TEST_P(Cuda, ElementwiseBroadcastAndSumToShape) {
  const Tensor a = input({4, 1, 9}), b = non_contiguous(input({5, 9}));
  expect_close(ops::add(on_gpu(a), on_gpu(b)), ops::add(a, b));
  expect_close(ops::sub(on_gpu(a), on_gpu(b)), ops::sub(a, b));
  expect_close(ops::mul(on_gpu(a), on_gpu(b)), ops::mul(a, b));
  expect_close(ops::scale(on_gpu(b), -2.5), ops::scale(b, -2.5));
  const Tensor big = input({4, 5, 9});
  expect_close(ops::sum_to_shape(on_gpu(big), {1, 9}), ops::sum_to_shape(big, {1, 9}));
  expect_close(ops::sum_to_shape(on_gpu(big), {4, 1, 9}), ops::sum_to_shape(big, {4, 1, 9}));
}

TEST_P(Cuda, EmbeddingAndBackward) {
  const Tensor weight = input({50, 24});
  const Tensor ids = Tensor::from_vector<int32_t>({3, 49, 0, 3, 7, 3}, {2, 3});
  expect_close(ops::embedding(on_gpu(weight), ids.to(gpu)), ops::embedding(weight, ids), 0.0);
  const Tensor dy = input({2, 3, 24});
  expect_close(ops::embedding_backward(ids.to(gpu), on_gpu(dy), 50), ops::embedding_backward(ids, dy, 50));
  expect_error([&] { ops::embedding(on_gpu(weight), Tensor::from_vector<int64_t>({50}, {1}).to(gpu)); },
               {"[embedding]", "id 50 at position 0 is out of range"});
}

TEST_P(Cuda, CrossEntropy) {
  const Tensor logits = input({9, 1001}, 20.0);
  const Tensor targets = Tensor::from_vector<int64_t>({5, -100, 1000, 0, 77, 3, -100, 999, 12}, {9});
  expect_close(ops::cross_entropy(on_gpu(logits), targets.to(gpu)), ops::cross_entropy(logits, targets));
  expect_close(ops::cross_entropy_backward(on_gpu(logits), targets.to(gpu), -100, 0.5),
               ops::cross_entropy_backward(logits, targets, -100, 0.5), 2.0);
  const Tensor ignored = Tensor::full({9}, -100, DType::i64, gpu);
  EXPECT_TRUE(std::isnan(ops::cross_entropy(on_gpu(logits), ignored).item()));
}

TEST_P(Cuda, ArgmaxAndTopk) {
  const Tensor x = input({6, 517});
  const Tensor gx = on_gpu(x);
  EXPECT_EQ(ops::argmax(gx).to_vector<int64_t>(), ops::argmax(x).to_vector<int64_t>());
  const auto g = ops::topk(gx, 9);
  const auto r = ops::topk(x, 9);
  EXPECT_EQ(g.indices.to_vector<int64_t>(), r.indices.to_vector<int64_t>());
  expect_close(g.values, r.values, 0.0);
  // Vocabulary-long rows take the chunked argmax: ties (the lowest index wins) and NaN (ranked first) across
  // chunk boundaries, and a maximum in the last partial chunk.
  Tensor long_rows = input({3, 151936});
  std::vector<double> values = long_rows.to_vector<double>();
  values[0 * 151936 + 5000] = values[0 * 151936 + 100000] = 99.0;  // tie: 5000
  values[1 * 151936 + 151935] = 99.0;
  values[2 * 151936 + 7] = 50.0;
  values[2 * 151936 + 90000] = std::nan("");
  long_rows = Tensor::from_vector(values, {3, 151936});
  const std::vector<int64_t> picks = ops::argmax(on_gpu(long_rows)).to_vector<int64_t>();
  EXPECT_EQ(picks, ops::argmax(long_rows).to_vector<int64_t>());
  EXPECT_EQ(picks, (std::vector<int64_t>{5000, 151935, 90000}));
}

TEST_P(Cuda, AttentionGroupedCausalWithCacheOffsetAndBackward) {
  for (int64_t kv_heads : {14, 2, 1}) {
    const Tensor q = input({2, 14, 5, 32}), k = input({2, kv_heads, 13, 32}),
                 v = input({2, kv_heads, 13, 32});
    ops::AttentionOptions options;
    options.kv_lengths = Tensor::from_vector<int64_t>({13, 10}, {2});
    ops::AttentionOptions gpu_options = options;
    gpu_options.kv_lengths = options.kv_lengths.to(gpu);
    const auto g = ops::attention(on_gpu(q), on_gpu(k), on_gpu(v), gpu_options);
    const auto r = ops::attention(q, k, v, options);
    expect_close(g.out, r.out, 2.0);
    expect_close(g.lse, r.lse, 0.1);
    const Tensor dout = input(q.shape());
    const auto gg =
        ops::attention_backward(on_gpu(q), on_gpu(k), on_gpu(v), g.out, g.lse, on_gpu(dout), gpu_options);
    const auto rg = ops::attention_backward(q, k, v, r.out, r.lse, dout, options);
    expect_close(gg.dq, rg.dq, 3.0);
    expect_close(gg.dk, rg.dk, 3.0);
    expect_close(gg.dv, rg.dv, 3.0);
  }
}

TEST(CudaRuntime, MemoryStatsStreamsEventsAndGraphs) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const auto before = cuda::memory_stats(0);
  {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::cuda(0));
    EXPECT_GE(cuda::memory_stats(0).current_bytes, before.current_bytes + (4u << 20));
    EXPECT_GE(cuda::memory_stats(0).peak_bytes, before.current_bytes + (4u << 20));
  }
  EXPECT_EQ(cuda::memory_stats(0).current_bytes, before.current_bytes);

  Generator gen = fresh_generator();
  const Tensor x = randn(gen, {64, 256}).to(Device::cuda(0));
  const Tensor w = randn(gen, {256}).to(Device::cuda(0));
  Tensor y = Tensor::empty({64, 256}, DType::f32, Device::cuda(0));
  cuda::Graph graph(0);
  graph.begin();
  y.copy_(ops::rms_norm(x, w, 1e-6));
  graph.end();
  y.fill_(0.0);
  cuda::Event start(0), stop(0);
  start.record();
  graph.replay();
  stop.record();
  stop.synchronize();
  EXPECT_GE(stop.elapsed_ms_since(start), 0.0f);
  EXPECT_LE(relative_error(y, ops::rms_norm(x.to(Device::cpu()), w.to(Device::cpu()), 1e-6)), 1e-5);
}

TEST(CudaRuntime, UnknownDeviceIsClearError) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  expect_error([] { Tensor::empty({4}, DType::f32, Device::cuda(cuda_device_count())); },
               {"[cuda]", "does not exist"});
}

TEST(CudaRuntime, ForcedUnusableImplementationIsError) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  setenv("WICK_IMPL_SOFTMAX", "cpu", 1);
  expect_error(
      [] {
        ops::softmax(Tensor::zeros({2, 3}, DType::f32, Device::cuda(0)));
      },
      {"[softmax] forced implementation 'cpu' cannot run this call"});
  unsetenv("WICK_IMPL_SOFTMAX");
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

// Each CUDA implementation of softmax and rms_norm, forced in turn, on row lengths the register-cached
// kernels take (multiples of the vector width up to the largest benchmarked row).
// Forces one implementation of the named ops while alive, also when an expectation throws.
class Force {
 public:
  Force(std::vector<std::string> ops, const char* impl) : ops_(std::move(ops)) {
    for (const auto& op : ops_) setenv(("WICK_IMPL_" + op).c_str(), impl, 1);
  }
  ~Force() {
    for (const auto& op : ops_) unsetenv(("WICK_IMPL_" + op).c_str());
  }

 private:
  std::vector<std::string> ops_;
};

// Each CUDA implementation of softmax and rms_norm, forced in turn, on the row lengths each one takes.
TEST_P(Cuda, SoftmaxAndRmsNormEveryImplementation) {
  for (int64_t cols : {8, 896, 1024, 4096, 16384, 18992}) {
    SCOPED_TRACE(cols);
    const bool row_cache_fits = cols <= 16384;  // 1024 threads × 16 values
    const Tensor x = input({3, cols}, 5.0), r = input({3, cols}), w = input({cols});
    ops::SoftmaxMask mask;
    mask.causal = true;
    mask.causal_offset = cols - 5;
    mask.lengths = Tensor::from_vector<int64_t>({cols, 0, 3}, {3});  // row 1 fully masked
    ops::SoftmaxMask gpu_mask = mask;
    gpu_mask.lengths = mask.lengths.to(gpu);
    const Tensor sum = ops::add(x, r).to(dtype()).to(DType::f64);  // the stored sum is rounded to dtype
    const Tensor masked_ref = ops::softmax(x, -1, mask), plain_ref = ops::softmax(x),
                 log_ref = ops::log_softmax(x);
    const Tensor norm_ref = ops::rms_norm(x, w, 1e-6), fused_ref = ops::rms_norm(sum, w, 1e-6);
    for (const char* impl : {"cuda_row_cache", "cuda_vector", "cuda"}) {
      SCOPED_TRACE(impl);
      if (std::string(impl) == "cuda_row_cache" && !row_cache_fits) continue;
      const bool takes_masks = std::string(impl) != "cuda_vector";
      Tensor masked, plain, log;
      {
        Force force({"SOFTMAX", "LOG_SOFTMAX"}, impl);  // the references above ran on the cpu before this
        if (takes_masks) masked = ops::softmax(on_gpu(x), -1, gpu_mask);
        plain = ops::softmax(on_gpu(x));
        log = ops::log_softmax(on_gpu(x));
      }
      if (takes_masks) expect_close(masked, masked_ref);
      expect_close(plain, plain_ref);
      expect_close(log, log_ref);
    }
    for (const char* impl : {"cuda_row_cache", "cuda"}) {
      SCOPED_TRACE(impl);
      if (std::string(impl) == "cuda_row_cache" && !row_cache_fits) continue;
      Tensor norm;
      ops::RmsNormResidual fused;
      {
        Force force({"RMS_NORM", "RMS_NORM_RESIDUAL"}, impl);
        norm = ops::rms_norm(on_gpu(x), on_gpu(w), 1e-6);
        fused = ops::rms_norm_residual(on_gpu(x), on_gpu(r), on_gpu(w), 1e-6);
      }
      expect_close(norm, norm_ref);
      expect_close(fused.sum, sum);
      expect_close(fused.y, fused_ref);
    }
  }
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, LoraLinearAndBiasEpilogue) {
  const Tensor x = input({3, 9, 64}), w = input({48, 64}), a = input({8, 64}), b = input({48, 8}),
               bias = input({48});
  const auto g = ops::lora_linear(on_gpu(x), on_gpu(w), on_gpu(a), on_gpu(b), 2.0, on_gpu(bias));
  const auto r = ops::lora_linear(x, w, a, b, 2.0, bias);
  expect_close(g.y, r.y, 2.0);
  const Tensor dy = input({3, 9, 48});
  const auto gg =
      ops::lora_linear_backward(on_gpu(x), on_gpu(w), on_gpu(a), on_gpu(b), 2.0, g.xa, on_gpu(dy));
  const auto rg = ops::lora_linear_backward(x, w, a, b, 2.0, g.xa.to(Device::cpu()).to(DType::f64), dy);
  EXPECT_EQ(gg.da.dtype(), DType::f32);
  expect_close(gg.dx, rg.dx, 2.0);
  expect_close(gg.da, rg.da, 2.0);
  expect_close(gg.db, rg.db, 2.0);
  const auto packed = ops::pack_lora_weights(on_gpu(w), on_gpu(a));
  expect_close(ops::lora_linear(on_gpu(x), packed.w, packed.a, on_gpu(b), 2.0).y,
               ops::lora_linear(x, w, a, b, 2.0).y, 2.0);
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, SamplingFiltersAndDrawsMatchTheCpu) {
  if (dtype() == DType::f16) GTEST_SKIP() << "covered by f32 and bf16";
  const Tensor logits = input({6, 1000}, 3.0);
  for (int64_t k : {1, 5, 50}) {
    EXPECT_EQ(values(ops::top_k_filter(on_gpu(logits), k)), values(ops::top_k_filter(logits.to(dtype()), k)))
        << k;
  }
  // The GPU sums probability mass in f32, the CPU in f64: a row whose cumulative mass passes within 1e-5 of
  // top_p may keep one token more or fewer there; every other row keeps exactly the same tokens.
  const auto near_boundary = [](const std::vector<double>& row, double top_p) {
    std::vector<double> p(row);
    std::sort(p.begin(), p.end(), std::greater<>());
    double total = 0, mass = 0;
    for (double x : p) total += std::exp(x - p.front());
    for (double x : p) {
      mass += std::exp(x - p.front()) / total;
      if (std::abs(mass - top_p) < 1e-5) return true;
    }
    return false;
  };
  const auto kept = [](const std::vector<double>& row) {
    return std::count_if(row.begin(), row.end(), [](double x) { return std::isfinite(x); });
  };
  for (double top_p : {0.1, 0.5, 0.95}) {
    const std::vector<double> gpu = values(ops::top_p_filter(on_gpu(logits), top_p));
    const std::vector<double> cpu = values(ops::top_p_filter(logits.to(dtype()), top_p));
    const std::vector<double> rounded = values(logits.to(dtype()));
    for (size_t r = 0; r < 6; ++r) {
      const auto slice = [r](const std::vector<double>& v) {
        return std::vector<double>(v.begin() + static_cast<std::ptrdiff_t>(r * 1000),
                                   v.begin() + static_cast<std::ptrdiff_t>((r + 1) * 1000));
      };
      if (near_boundary(slice(rounded), top_p)) {
        EXPECT_LE(std::abs(kept(slice(gpu)) - kept(slice(cpu))), 1) << top_p << " row " << r;
      } else {
        EXPECT_EQ(slice(gpu), slice(cpu)) << top_p << " row " << r;
      }
    }
  }
  const Tensor many = input({4000, 37}, 2.0);
  Generator cpu_gen(99), gpu_gen(99);
  const auto cpu_ids = ops::sample_multinomial(many.to(dtype()), cpu_gen).to_vector<int64_t>();
  const auto gpu_ids = ops::sample_multinomial(on_gpu(many), gpu_gen).to_vector<int64_t>();
  int64_t same = 0;
  for (size_t i = 0; i < cpu_ids.size(); ++i) same += cpu_ids[i] == gpu_ids[i];
  // The same Philox numbers pick the same token except where summation order moves a boundary.
  EXPECT_GE(same, 3990);
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, DecodeGemvMatchesTheCpuAndDeclinesOtherShapes) {
  for (int64_t m : {1, 2, 3, 4}) {
    const Tensor a = input({m, 136}), b = input({77, 136}), c0 = input({m, 77}), bias = input({77});
    ops::GemmOptions options;
    options.transpose_b = true;
    options.alpha = 1.5;
    options.beta = 0.5;
    options.bias = on_gpu(bias);
    Tensor c = on_gpu(c0);
    setenv("WICK_IMPL_GEMM", "cuda_gemv", 1);
    ops::gemm(on_gpu(a), on_gpu(b), c, options);
    unsetenv("WICK_IMPL_GEMM");
    options.bias = bias;
    Tensor reference = c0.clone();
    ops::gemm(a, b, reference, options);
    expect_close(c, reference, 2.0);
  }
  setenv("WICK_IMPL_GEMM", "cuda_gemv", 1);
  expect_error(
      [&] {
        ops::matmul(on_gpu(input({5, 136})), on_gpu(input({77, 136})), false, true);
      },
      {"[gemm] forced implementation 'cuda_gemv' cannot run this call"});
  expect_error(
      [&] {
        ops::matmul(on_gpu(input({1, 135})), on_gpu(input({77, 135})), false, true);
      },
      {"[gemm] forced implementation 'cuda_gemv' cannot run this call"});
  unsetenv("WICK_IMPL_GEMM");
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, LinearCrossEntropyMatchesTheCpu) {
  const Tensor hidden = input({70, 64}), weight = input({1000, 64}, 0.3);
  std::vector<int64_t> ids(70);
  for (int64_t i = 0; i < 70; ++i) ids[i] = i % 9 == 0 ? -100 : (i * 37) % 1000;
  const Tensor targets = Tensor::from_vector(ids, {70});
  const auto g = ops::linear_cross_entropy(on_gpu(hidden), on_gpu(weight), targets.to(gpu), -100, true, 32);
  const auto r = ops::linear_cross_entropy(hidden, weight, targets, -100, true, 32);
  expect_close(g.loss, r.loss);
  expect_close(g.dhidden, r.dhidden, 2.0);
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, GemmBiasGradientFusedOrNot) {
  for (bool transpose_a : {true, false}) {
    const Tensor a = input(transpose_a ? Shape{64, 48} : Shape{48, 64}), b = input({64, 40});
    ops::GemmOptions options;
    options.transpose_a = transpose_a;
    options.bias_gradient = Tensor::full({48}, std::nan(""), DType::f32, gpu);
    Tensor c = Tensor::empty({48, 40}, DType::f32, gpu);
    ops::gemm(on_gpu(a), on_gpu(b), c, options);
    ops::GemmOptions reference_options = options;
    reference_options.bias_gradient = Tensor::empty({48}, DType::f64);
    Tensor reference = Tensor::empty({48, 40}, DType::f64);
    ops::gemm(a, b, reference, reference_options);
    expect_close(c, reference, 2.0);
    expect_close(options.bias_gradient, reference_options.bias_gradient, 2.0);
  }
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, CrossEntropyWithGradInOnePass) {
  const Tensor logits = input({9, 1001}, 20.0);
  const Tensor targets = Tensor::from_vector<int64_t>({5, -100, 1000, 0, 77, 3, -100, 999, 12}, {9});
  const auto g = ops::cross_entropy_with_grad(on_gpu(logits), targets.to(gpu), -100, 0.5);
  expect_close(g.loss, ops::cross_entropy(logits, targets));
  expect_close(g.dlogits, ops::cross_entropy_backward(logits, targets, -100, 0.5), 2.0);
}

// Rows of whole 16-byte vectors (a vocabulary's width, with one very large and one very small logit) take the
// vectorized row kernels in all three entry points.
TEST_P(Cuda, CrossEntropyVectorRows) {
  for (int64_t cols : {8, 1000, 151936}) {
    Tensor logits = input({5, cols}, 10.0);
    logits.narrow(0, 1, 1).narrow(1, cols - 1, 1).fill_(60.0);
    logits.narrow(0, 2, 1).narrow(1, 0, 1).fill_(-60.0);
    const Tensor targets = Tensor::from_vector<int64_t>({0, cols - 1, -100, cols / 2, 3}, {5});
    const auto g = ops::cross_entropy_with_grad(on_gpu(logits), targets.to(gpu), -100, 0.5);
    const Tensor loss = ops::cross_entropy(logits, targets);
    const Tensor dlogits = ops::cross_entropy_backward(logits, targets, -100, 0.5);
    expect_close(g.loss, loss);
    expect_close(g.dlogits, dlogits, 2.0);
    expect_close(ops::cross_entropy(on_gpu(logits), targets.to(gpu)), loss);
    const Tensor gpu_dlogits = ops::cross_entropy_backward(on_gpu(logits), targets.to(gpu), -100, 0.5);
    expect_close(gpu_dlogits, dlogits, 2.0);
    // The kernel that forms the loss with the gradient gives the backward kernel's bits.
    expect_close(g.dlogits, gpu_dlogits.to(Device::cpu()).to(DType::f64), 0.0);
  }
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST_P(Cuda, PenaltiesAndMinPMatchTheCpu) {
  if (dtype() == DType::f16) GTEST_SKIP() << "covered by f32 and bf16";
  const Tensor logits = input({3, 500}, 3.0);
  const Tensor counts = rand_uniform({3, 500}, gen, 0, 3, DType::f32).to(DType::i32).to(DType::f32);
  expect_close(ops::apply_penalties(on_gpu(logits), counts.to(gpu), 1.3, 0.2, 0.1),
               ops::apply_penalties(logits.to(dtype()).to(DType::f64), counts, 1.3, 0.2, 0.1));
  EXPECT_EQ(values(ops::min_p_filter(on_gpu(logits), 0.05)),
            values(ops::min_p_filter(logits.to(dtype()), 0.05)));
}

}  // namespace
}  // namespace wick::test
