// The decode step's kernels on the GPU: the decode GEMV against float64 at the shapes of a Qwen2.5-0.5B step
// (lm_head included), split or not, with alpha, beta and bias, run twice for the same bits; the fused decode
// ops against the CPU composition and float64 for 1 to 4 rows; and a whole decode step of a
// Qwen2.5-0.5B-shaped model, captured as a graph, against the CPU. Skips cleanly without a CUDA device.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/cuda_test.h"

namespace wick::test {
namespace {

class CudaDecode : public CudaTest {
 protected:
  // Random values rounded to the tested dtype, as f64 on the cpu.
  Tensor input(const Shape& shape, double std = 1.0) {
    return randn(gen, shape, dtype(), std).to(DType::f64);
  }
  Tensor on_gpu(const Tensor& t) { return t.to(dtype()).to(gpu); }
  Tensor in_dtype(const Tensor& t) { return t.to(dtype()); }
  void expect_close(const Tensor& gpu_result, const Tensor& reference, double scale = 1.0) {
    ASSERT_EQ(gpu_result.device(), gpu);
    ASSERT_EQ(gpu_result.shape(), reference.shape());
    const double error =
        relative_error(gpu_result.to(Device::cpu()).to(DType::f64), reference.to(DType::f64));
    EXPECT_LE(error, scale * tolerance(dtype())) << "dtype " << dtype_name(dtype());
  }
  bool fits_shared_memory(int64_t rows, int64_t k) const {
    return rows * k * static_cast<int64_t>(dtype_size(dtype())) <= 48 * 1024;
  }
};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaDecode, ::testing::Values(DType::f32, DType::bf16, DType::f16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

struct GemvShape {
  int64_t n, k;
};

TEST_P(CudaDecode, GemvMatchesFloat64AtDecodeShapes) {
  // q/k/v, o, gate/up, down (K split across warps), few columns, odd N, a single vector of K.
  for (const GemvShape& s :
       {GemvShape{1152, 896}, GemvShape{896, 896}, GemvShape{9728, 896}, GemvShape{896, 4864},
        GemvShape{7, 4864}, GemvShape{1153, 896}, GemvShape{5, 8}, GemvShape{4097, 896}}) {
    for (int64_t m : {1, 2, 3, 4}) {
      SCOPED_TRACE(testing::Message() << "m " << m << " n " << s.n << " k " << s.k);
      const Tensor a = input({m, s.k}), b = input({s.n, s.k}, 0.05), c0 = input({m, s.n});
      const Tensor bias = input({s.n});
      for (int variant = 0; variant < 3; ++variant) {
        ops::GemmOptions options;
        options.transpose_b = true;
        if (variant == 1) {  // a residual update: c += a·bᵀ + bias
          options.beta = 1.0;
          options.bias = bias;
        } else if (variant == 2) {
          options.alpha = 0.75;
          options.beta = 0.5;
        }
        Tensor reference = c0.clone();
        ops::gemm(a, b, reference, options);
        if (options.bias.defined()) options.bias = on_gpu(bias);
        const Tensor ga = on_gpu(a), gb = on_gpu(b);
        Tensor c = on_gpu(c0), again = on_gpu(c0);
        {
          const ForcedImplementation forced("WICK_IMPL_GEMM", "cuda_gemv");
          ops::gemm(ga, gb, c, options);
          ops::gemm(ga, gb, again, options);
        }
        expect_close(c, reference, 2.0);
        EXPECT_EQ(c.to(Device::cpu()).to_vector<double>(), again.to(Device::cpu()).to_vector<double>())
            << "the same bits on every run";
      }
    }
  }
}

TEST_P(CudaDecode, GemvMatchesFloat64AtTheLmHeadShape) {
  if (dtype() == DType::f16) GTEST_SKIP() << "covered by f32 and bf16";
  const Tensor b = input({151936, 896}, 0.05);
  const Tensor gb = on_gpu(b);
  for (int64_t m : {1, 4}) {
    SCOPED_TRACE(testing::Message() << "m " << m);
    const Tensor a = input({m, 896});
    Tensor c = Tensor::full({m, 151936}, std::nan(""), dtype(), gpu);
    {
      const ForcedImplementation forced("WICK_IMPL_GEMM", "cuda_gemv");
      ops::gemm(on_gpu(a), gb, c, [] {
        ops::GemmOptions options;
        options.transpose_b = true;
        return options;
      }());
    }
    expect_close(c, ops::matmul(a, b, false, true), 2.0);
  }
}

TEST_P(CudaDecode, AddLinearMatchesTheComposition) {
  for (int64_t k : {896, 4864}) {
    for (int64_t n : {895, 4097}) {
      for (int64_t m : {1, 2, 3, 4}) {
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(testing::Message() << "m " << m << " n " << n << " k " << k << " bias " << with_bias);
          const Tensor x = input({m, 1, k}), w = input({n, k}, 0.05), out0 = input({m, 1, n});
          const Tensor bias = with_bias ? input({n}) : Tensor();
          const Tensor out = on_gpu(out0);
          {
            const ForcedImplementation forced("WICK_IMPL_ADD_LINEAR", "cuda_fused");
            ops::add_linear(out, on_gpu(x), on_gpu(w), with_bias ? on_gpu(bias) : Tensor());
          }
          const Tensor expected = in_dtype(out0);
          ops::add_linear(expected, in_dtype(x), in_dtype(w), with_bias ? in_dtype(bias) : Tensor());
          expect_close(out, expected, 2.0);
          const Tensor exact = out0.clone();
          ops::add_linear(exact, x, w, bias);
          expect_close(out, exact, 2.0);
        }
      }
    }
  }
}

TEST_P(CudaDecode, RmsNormLinearMatchesTheComposition) {
  const ForcedImplementation forced("WICK_IMPL_RMS_NORM_LINEAR", "cuda_fused");
  for (int64_t k : {896, 4864}) {
    for (int64_t n : {1153, 7}) {
      for (int64_t m : {1, 2, 3, 4}) {
        if (!fits_shared_memory(m, k)) continue;
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(testing::Message() << "m " << m << " n " << n << " k " << k << " bias " << with_bias);
          const Tensor x = input({m, 1, k}, 3.0), norm_weight = input({k}), w = input({n, k}, 0.05);
          const Tensor bias = with_bias ? input({n}) : Tensor();
          const Tensor y = ops::rms_norm_linear(on_gpu(x), on_gpu(norm_weight), 1e-6, on_gpu(w),
                                                with_bias ? on_gpu(bias) : Tensor());
          EXPECT_EQ(y.shape(), (Shape{m, 1, n}));
          // The composition on the cpu in the same dtype, and in float64.
          expect_close(y,
                       ops::linear(ops::rms_norm(in_dtype(x), in_dtype(norm_weight), 1e-6), in_dtype(w),
                                   with_bias ? in_dtype(bias) : Tensor()),
                       2.0);
          // Float64 products of the normalized rows as stored: with a few output columns the stored
          // rounding of those rows could otherwise dominate an output near zero.
          expect_close(
              y, ops::linear(ops::rms_norm(in_dtype(x), in_dtype(norm_weight), 1e-6).to(DType::f64), w, bias),
              2.0);
        }
      }
    }
  }
}

TEST_P(CudaDecode, RmsNormLinearSwigluMatchesTheComposition) {
  const ForcedImplementation forced("WICK_IMPL_RMS_NORM_LINEAR_SWIGLU", "cuda_fused");
  for (int64_t k : {896, 4864}) {
    for (int64_t inter : {4864, 77}) {
      for (int64_t m : {1, 2, 3, 4}) {
        if (!fits_shared_memory(m, k)) continue;
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(testing::Message()
                       << "m " << m << " inter " << inter << " k " << k << " bias " << with_bias);
          const Tensor x = input({m, 1, k}, 3.0), norm_weight = input({k}),
                       gate_up = input({2 * inter, k}, 0.05);
          const Tensor bias = with_bias ? input({2 * inter}) : Tensor();
          const Tensor y = ops::rms_norm_linear_swiglu(on_gpu(x), on_gpu(norm_weight), 1e-6, on_gpu(gate_up),
                                                       with_bias ? on_gpu(bias) : Tensor());
          EXPECT_EQ(y.shape(), (Shape{m, 1, inter}));
          const auto composed = [&](const Tensor& xs, const Tensor& ws, const Tensor& gu, const Tensor& bs) {
            const Tensor both = ops::linear(ops::rms_norm(xs, ws, 1e-6), gu, bs);
            return ops::swiglu(both.narrow(-1, 0, inter), both.narrow(-1, inter, inter));
          };
          expect_close(y,
                       composed(in_dtype(x), in_dtype(norm_weight), in_dtype(gate_up),
                                with_bias ? in_dtype(bias) : Tensor()),
                       2.0);
          expect_close(y, composed(x, norm_weight, gate_up, bias), 2.0);
        }
      }
    }
  }
}

TEST_P(CudaDecode, RopeWriteCacheMatchesTheComposition) {
  const int64_t heads = 14, kv_heads = 2, dim = 64, capacity = 40;
  for (int64_t batch : {1, 2, 3, 4}) {
    for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
      SCOPED_TRACE(testing::Message()
                   << "batch " << batch << " interleaved " << (style == ops::RopeStyle::interleaved));
      const Tensor qkv = input({batch, 1, (heads + 2 * kv_heads) * dim});
      // Positions anywhere in the cache, the fourth row's past it (rotated, not stored).
      std::vector<int64_t> at = {0, 39, 17, capacity + 5};
      at.resize(static_cast<size_t>(batch));
      const Tensor positions = Tensor::from_vector(at, {batch});
      const Tensor keys = input({batch, kv_heads, capacity, dim}),
                   values = input({batch, kv_heads, capacity, dim});
      ops::RopeOptions options;
      options.theta = 1000000.0;
      options.style = style;
      const Tensor gpu_keys = on_gpu(keys), gpu_values = on_gpu(values);
      Tensor q;
      {
        const ForcedImplementation forced("WICK_IMPL_ROPE_WRITE_CACHE", "cuda_fused");
        q = ops::rope_write_cache(on_gpu(qkv), positions.to(gpu), heads, kv_heads, gpu_keys, gpu_values,
                                  options);
      }
      // The cpu runs the composition (rope, then write_at_positions).
      const Tensor cpu_keys = in_dtype(keys), cpu_values = in_dtype(values);
      const Tensor expected_q =
          ops::rope_write_cache(in_dtype(qkv), positions, heads, kv_heads, cpu_keys, cpu_values, options);
      EXPECT_EQ(q.shape(), (Shape{batch, heads, 1, dim}));
      expect_close(q, expected_q);
      expect_close(gpu_keys, cpu_keys);
      expect_close(gpu_values, cpu_values, 0.0);
      if (batch == 4) {  // the row past the capacity left its cache rows as they were
        expect_close(gpu_keys.narrow(0, 3, 1), keys.narrow(0, 3, 1), 0.0);
        expect_close(gpu_values.narrow(0, 3, 1), values.narrow(0, 3, 1), 0.0);
      }
    }
  }
}

TEST_P(CudaDecode, RmsNormLinearRopeWriteCacheMatchesTheComposition) {
  const int64_t heads = 14, kv_heads = 2, dim = 64, capacity = 40, k = 896;
  for (int64_t batch : {1, 2, 3, 4}) {
    for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(testing::Message() << "batch " << batch << " interleaved "
                                        << (style == ops::RopeStyle::interleaved) << " bias " << with_bias);
        const Tensor x = input({batch, 1, k}, 3.0), norm_weight = input({k});
        const Tensor w = input({(heads + 2 * kv_heads) * dim, k}, 0.05);
        const Tensor bias = with_bias ? input({(heads + 2 * kv_heads) * dim}) : Tensor();
        std::vector<int64_t> at = {3, 39, 0, capacity + 2};  // the fourth row past the cache
        at.resize(static_cast<size_t>(batch));
        const Tensor positions = Tensor::from_vector(at, {batch});
        const Tensor keys = input({batch, kv_heads, capacity, dim}),
                     values = input({batch, kv_heads, capacity, dim});
        ops::RopeOptions options;
        options.theta = 1000000.0;
        options.style = style;
        const Tensor gpu_keys = on_gpu(keys), gpu_values = on_gpu(values);
        Tensor q;
        {
          const ForcedImplementation forced("WICK_IMPL_RMS_NORM_LINEAR_ROPE_WRITE_CACHE", "cuda_fused");
          q = ops::rms_norm_linear_rope_write_cache(on_gpu(x), on_gpu(norm_weight), 1e-6, on_gpu(w),
                                                    with_bias ? on_gpu(bias) : Tensor(), positions.to(gpu),
                                                    heads, kv_heads, gpu_keys, gpu_values, options);
        }
        const Tensor cpu_keys = in_dtype(keys), cpu_values = in_dtype(values);
        const Tensor expected_q = ops::rms_norm_linear_rope_write_cache(
            in_dtype(x), in_dtype(norm_weight), 1e-6, in_dtype(w), with_bias ? in_dtype(bias) : Tensor(),
            positions, heads, kv_heads, cpu_keys, cpu_values, options);
        EXPECT_EQ(q.shape(), (Shape{batch, heads, 1, dim}));
        expect_close(q, expected_q, 2.0);
        expect_close(gpu_keys, cpu_keys, 2.0);
        expect_close(gpu_values, cpu_values, 2.0);
        if (batch == 4) {
          expect_close(gpu_keys.narrow(0, 3, 1), keys.narrow(0, 3, 1), 0.0);
          expect_close(gpu_values.narrow(0, 3, 1), values.narrow(0, 3, 1), 0.0);
        }
      }
    }
  }
}

// Two layers of Qwen2.5-0.5B's shape with random weights: the GPU's decode step (fused ops, the flash decode
// kernel, the lm_head GEMV), captured into a graph and replayed, against the same step on the CPU, both in
// the tested dtype; rows at different positions.
TEST_P(CudaDecode, QwenShapedStepCapturedAndReplayedMatchesTheCpu) {
  if (dtype() == DType::f16) GTEST_SKIP() << "covered by f32 and bf16";
  const nlohmann::json shape = {{"model_type", "qwen2"},      {"vocab_size", 151936},
                                {"hidden_size", 896},         {"intermediate_size", 4864},
                                {"num_hidden_layers", 2},     {"num_attention_heads", 14},
                                {"num_key_value_heads", 2},   {"max_position_embeddings", 32768},
                                {"rope_theta", 1000000.0},    {"rms_norm_eps", 1e-6},
                                {"tie_word_embeddings", true}};
  const auto config = models::parse_config(shape, "Qwen2.5-0.5B shape");
  const models::Decoder cpu_model(config, models::RandomWeights(11), Device::cpu(), dtype());
  const models::Decoder gpu_model(config, models::RandomWeights(11), gpu, dtype());
  for (int64_t batch : {1, 3}) {
    SCOPED_TRACE(testing::Message() << "batch " << batch);
    const int64_t capacity = 24;
    models::KvCache cpu_cache(config, batch, capacity, dtype(), Device::cpu());
    models::KvCache gpu_cache(config, batch, capacity, dtype(), gpu);
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
      const Tensor k = input({batch, 2, capacity, 64}), v = input({batch, 2, capacity, 64});
      cpu_cache.keys(layer).copy_(k);
      cpu_cache.values(layer).copy_(v);
      gpu_cache.keys(layer).copy_(k);
      gpu_cache.values(layer).copy_(v);
    }
    std::vector<int64_t> ids, positions, lengths;
    for (int64_t b = 0; b < batch; ++b) {
      ids.push_back(1000 * b + 17);
      positions.push_back(5 + 7 * b);
      lengths.push_back(6 + 7 * b);
    }
    const Tensor expected = cpu_model.forward_at_positions(Tensor::from_vector(ids, {batch, 1}),
                                                           Tensor::from_vector(positions, {batch}),
                                                           Tensor::from_vector(lengths, {batch}), cpu_cache);
    const Tensor gpu_ids = Tensor::from_vector(ids, {batch, 1}).to(gpu),
                 gpu_positions = Tensor::from_vector(positions, {batch}).to(gpu),
                 gpu_lengths = Tensor::from_vector(lengths, {batch}).to(gpu);
    const Tensor eager = gpu_model.forward_at_positions(gpu_ids, gpu_positions, gpu_lengths, gpu_cache);
    cuda::Graph graph;
    Tensor captured;
    graph.begin();
    captured = gpu_model.forward_at_positions(gpu_ids, gpu_positions, gpu_lengths, gpu_cache);
    graph.end();
    graph.replay();
    expect_close(eager, expected, 3.0);
    expect_close(captured, expected, 3.0);
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
      expect_close(gpu_cache.keys(layer), cpu_cache.keys(layer));
      expect_close(gpu_cache.values(layer), cpu_cache.values(layer));
    }
  }
}

}  // namespace
}  // namespace wick::test
