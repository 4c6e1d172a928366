// The flash attention kernels (cuda_flash, cuda_flash_decode and the flash backward) forced through the op's
// selection table, against the CPU op in f64 on the same rounded inputs: fresh random data, odd lengths,
// grouped KV heads, causal and not, query offsets, padded batches, strided views, head_dim 32 (forward
// only), 64 and 128, bf16 and f16. Tolerances (relative L2 error): out ≤ tolerance(dtype) (1e-2 bf16, 3e-3
// f16: P is rounded to the input dtype before P·V, everything else accumulates in f32); lse ≤ 1e-5 relative
// (f32 throughout, the -inf of fully masked rows must match exactly); dq/dk/dv ≤ 2·tolerance(dtype) (dS is
// rounded to the input dtype, and rowsum(dO∘O) uses the rounded forward output). With WICK_ATTENTION_BENCH=1,
// FlashAttentionBench.Table times the op on fixed shapes (scripts/gpu-attention.sh). Skips cleanly where no
// CUDA device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "support/cuda_test.h"

namespace wick::test {
namespace {

// Forces one implementation of attention (and of its backward) while alive.
class ForceAttention {
 public:
  ForceAttention(const char* forward, const char* backward) {
    set("WICK_IMPL_ATTENTION", forward);
    set("WICK_IMPL_ATTENTION_BACKWARD", backward);
  }
  ~ForceAttention() {
    unsetenv("WICK_IMPL_ATTENTION");
    unsetenv("WICK_IMPL_ATTENTION_BACKWARD");
  }

 private:
  static void set(const char* name, const char* value) {
    if (value != nullptr) setenv(name, value, 1);
  }
};

struct Case {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal = true;
  int64_t query_offset = -1;
  std::vector<int64_t> kv_lengths = {};
  double scale = std::numeric_limits<double>::quiet_NaN();
  bool strided = false;  // q/k/v as [batch, heads, seq, dim] views of [batch, seq, heads, dim] storage
  bool settled = false;  // AttentionOptions::cache_prefix_settled

  std::string str() const {
    std::ostringstream s;
    s << "b" << batch << " hq" << q_heads << " hkv" << kv_heads << " q" << q_len << " kv" << kv_len << " d"
      << head_dim << (causal ? " causal" : " full") << " offset" << query_offset;
    if (!kv_lengths.empty()) {
      s << " lengths";
      for (int64_t n : kv_lengths) s << " " << n;
    }
    if (!std::isnan(scale)) s << " scale" << scale;
    if (strided) s << " strided";
    if (settled) s << " settled";
    return s.str();
  }
  ops::AttentionOptions options(Device device) const {
    ops::AttentionOptions o;
    o.causal = causal;
    o.query_offset = query_offset;
    o.scale = scale;
    o.cache_prefix_settled = settled;
    if (!kv_lengths.empty())
      o.kv_lengths =
          Tensor::from_vector<int64_t>(kv_lengths, {static_cast<int64_t>(kv_lengths.size())}).to(device);
    return o;
  }
};

// Whether device 0 runs the Hopper (wgmma) tile: asks the op, which refuses that tile elsewhere.
bool hopper() {
  static const bool yes = [] {
    setenv("WICK_FLASH_TILE", "wgmma", 1);
    bool ok = true;
    try {
      const Tensor q = Tensor::zeros({1, 1, 1, 64}, DType::bf16, Device::cuda(0));
      setenv("WICK_IMPL_ATTENTION", "cuda_flash", 1);
      ops::attention(q, q, q);
    } catch (const Error&) {
      ok = false;
    }
    unsetenv("WICK_IMPL_ATTENTION");
    unsetenv("WICK_FLASH_TILE");
    return ok;
  }();
  return yes;
}

// Relative L2 error over the finite entries, after checking that the infinite ones (lse of fully masked rows)
// sit at the same places with the same sign.
double lse_error(const Tensor& gpu_lse, const Tensor& reference) {
  const std::vector<double> got = gpu_lse.to(Device::cpu()).to_vector<double>(),
                            want = reference.to_vector<double>();
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0, rows = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i]) || std::isnan(got[i])) {
      EXPECT_EQ(got[i], want[i]) << "lse row " << i;
      continue;
    }
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
    rows += 1;
  }
  // Relative to the rows' magnitudes, but never below 1 per row: a few rows whose lse happens to lie near 0
  // are judged by their absolute error.
  norm = std::max(norm, rows);
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

class FlashAttention : public CudaTest {
 protected:
  struct Inputs {
    Tensor q, k, v, dout;      // f64 on the cpu, rounded to dtype
    Tensor gq, gk, gv, gdout;  // dtype on the gpu (strided views where the case asks)
  };
  // [batch, heads, seq, dim] values; on the GPU optionally stored as [batch, seq, heads, dim] and transposed.
  Tensor on_gpu(const Tensor& t, bool strided) {
    if (!strided) return t.to(dtype()).to(gpu);
    return t.transpose(1, 2).contiguous().to(dtype()).to(gpu).transpose(1, 2);
  }
  Inputs inputs(const Case& c) {
    Inputs in;
    auto make = [&](const Shape& shape) { return randn(gen, shape, dtype()).to(DType::f64); };
    in.q = make({c.batch, c.q_heads, c.q_len, c.head_dim});
    in.k = make({c.batch, c.kv_heads, c.kv_len, c.head_dim});
    in.v = make({c.batch, c.kv_heads, c.kv_len, c.head_dim});
    in.dout = make({c.batch, c.q_heads, c.q_len, c.head_dim});
    in.gq = on_gpu(in.q, c.strided);
    in.gk = on_gpu(in.k, c.strided);
    in.gv = on_gpu(in.v, c.strided);
    in.gdout = on_gpu(in.dout, c.strided);
    if (c.strided && c.q_len > 1) {
      EXPECT_FALSE(in.gq.is_contiguous());
    }
    return in;
  }
  double relative(const Tensor& gpu_result, const Tensor& reference) {
    EXPECT_EQ(gpu_result.device(), gpu);
    EXPECT_EQ(gpu_result.shape(), reference.shape());
    return relative_error(gpu_result.to(Device::cpu()).to(DType::f64), reference);
  }

  // Forward with `impl` forced, against the f64 cpu op.
  void check_forward(const Case& c, const char* impl) {
    SCOPED_TRACE(c.str() + " " + impl);
    const Inputs in = inputs(c);
    const auto ref = ops::attention(in.q, in.k, in.v, c.options(Device::cpu()));
    ops::AttentionResult got;
    {
      ForceAttention force(impl, nullptr);
      got = ops::attention(in.gq, in.gk, in.gv, c.options(gpu));
    }
    EXPECT_EQ(got.lse.dtype(), DType::f32);
    EXPECT_LE(relative(got.out, ref.out), tolerance(dtype())) << "out";
    EXPECT_LE(lse_error(got.lse, ref.lse), 1e-5) << "lse";
  }

  // Forward and backward through `impl` (the flash kernels by default), against the f64 cpu op.
  void check_backward(const Case& c, const char* impl = "cuda_flash") {
    SCOPED_TRACE(c.str() + " " + impl);
    const Inputs in = inputs(c);
    const auto options = c.options(Device::cpu());
    const auto ref = ops::attention(in.q, in.k, in.v, options);
    const auto ref_grads = ops::attention_backward(in.q, in.k, in.v, ref.out, ref.lse, in.dout, options);
    ops::AttentionResult got;
    ops::AttentionGrads grads, again;
    {
      ForceAttention force(impl, impl);
      const auto gpu_options = c.options(gpu);
      got = ops::attention(in.gq, in.gk, in.gv, gpu_options);
      grads = ops::attention_backward(in.gq, in.gk, in.gv, got.out, got.lse, in.gdout, gpu_options);
      again = ops::attention_backward(in.gq, in.gk, in.gv, got.out, got.lse, in.gdout, gpu_options);
    }
    EXPECT_LE(relative(got.out, ref.out), tolerance(dtype())) << "out";
    EXPECT_LE(relative(grads.dq, ref_grads.dq), 2 * tolerance(dtype())) << "dq";
    EXPECT_LE(relative(grads.dk, ref_grads.dk), 2 * tolerance(dtype())) << "dk";
    EXPECT_LE(relative(grads.dv, ref_grads.dv), 2 * tolerance(dtype())) << "dv";
    // Deterministic: the same inputs give the same bits.
    EXPECT_EQ(
        relative_error(grads.dq.to(Device::cpu()).to(DType::f64), again.dq.to(Device::cpu()).to(DType::f64)),
        0.0);
    EXPECT_EQ(
        relative_error(grads.dk.to(Device::cpu()).to(DType::f64), again.dk.to(Device::cpu()).to(DType::f64)),
        0.0);
    EXPECT_EQ(
        relative_error(grads.dv.to(Device::cpu()).to(DType::f64), again.dv.to(Device::cpu()).to(DType::f64)),
        0.0);
  }
};

INSTANTIATE_TEST_SUITE_P(Dtypes, FlashAttention, ::testing::Values(DType::bf16, DType::f16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

std::vector<Case> forward_cases() {
  std::vector<Case> cases;
  for (int64_t d : {32, 64, 128}) {
    cases.push_back({1, 2, 2, 1, 1, d});
    cases.push_back({2, 4, 4, 17, 17, d});
    cases.push_back({1, 14, 2, 100, 100, d, false});                   // 7 query heads per kv head
    cases.push_back({2, 6, 3, 257, 257, d, true, -1, {}, NAN, true});  // ratio 2, strided views
    cases.push_back({1, 7, 1, 33, 300, d});                            // queries after a cache (offset 267)
    cases.push_back({2, 4, 2, 40, 129, d, true, 50, {129, 70}});       // explicit offset, padded batch
    cases.push_back({3, 2, 1, 64, 64, d, false, -1, {64, 1, 0}});      // a fully masked batch
    cases.push_back({1, 4, 4, 65, 80, d, false, -1, {}, 0.3});         // custom scale
    cases.push_back({1, 3, 3, 100, 60, d, true, -1, {}, NAN, true});   // more queries than keys: offset -40
    cases.push_back({2, 14, 2, 130, 130, d, true, -1, {100, 130}, -0.05, true});
  }
  return cases;
}

TEST_P(FlashAttention, ForwardMatchesReference) {
  for (const Case& c : forward_cases()) check_forward(c, "cuda_flash");
}

// Decode shapes (few queries against a long cache): the split-key kernel and its combine, and the one-query
// kernel for short caches, against the cpu op and against the unsplit kernel.
TEST_P(FlashAttention, DecodeMatchesReferenceAndFullAttention) {
  std::vector<Case> cases;
  for (int64_t kv : {1, 100, 4099, 20000}) {
    cases.push_back({1, 14, 2, 1, kv, 64});
    cases.push_back({1, 14, 2, 4, kv, 64});  // 28 packed rows: the 4-warp tile
    cases.push_back({2, 8, 8, 1, kv, 128, false});
  }
  cases.push_back({2, 14, 2, 3, 5000, 128, true, 3000, {5000, 2500}, NAN, true});
  cases.push_back({3, 4, 1, 2, 700, 64, true, -1, {700, 0, 333}});
  // One query against a short cache (cuda_decode): padded rows, an empty row, an explicit offset, a scale.
  cases.push_back({3, 14, 2, 1, 700, 64, true, -1, {700, 0, 333}});
  cases.push_back({2, 8, 4, 1, 1000, 128, true, 500, {1000, 900}, NAN, true});
  cases.push_back({1, 6, 6, 1, 257, 64, false, -1, {}, 0.3, true});
  for (const Case& c : cases) {
    check_forward(c, "cuda_flash_decode");
    if (c.q_len == 1 && c.kv_len <= 1024) {
      check_forward(c, "cuda_decode");
      Case settled = c;  // rows below the last staged in shared memory (part of them for the longer caches)
      settled.settled = true;
      check_forward(settled, "cuda_decode");
    }
    SCOPED_TRACE(c.str());
    const Inputs in = inputs(c);
    ops::AttentionResult split, full;
    {
      ForceAttention force("cuda_flash_decode", nullptr);
      split = ops::attention(in.gq, in.gk, in.gv, c.options(gpu));
    }
    {
      ForceAttention force("cuda_flash", nullptr);
      full = ops::attention(in.gq, in.gk, in.gv, c.options(gpu));
    }
    EXPECT_LE(relative(split.out, full.out.to(Device::cpu()).to(DType::f64)), tolerance(dtype()));
  }
}

TEST_P(FlashAttention, BackwardMatchesReference) {
  for (int64_t d : {64, 128}) {
    check_backward({1, 2, 2, 1, 1, d});
    check_backward({2, 4, 4, 17, 17, d});
    check_backward({1, 14, 2, 100, 100, d, false});
    check_backward({2, 6, 3, 257, 257, d, true, -1, {}, NAN, true});
    check_backward({1, 7, 1, 33, 300, d});
    check_backward({2, 4, 2, 40, 129, d, true, 50, {129, 70}});
    check_backward({3, 2, 1, 64, 64, d, false, -1, {64, 1, 0}, 0.3});
    check_backward({1, 3, 3, 100, 60, d, true, -1, {}, NAN, true});
    check_backward({1, 14, 2, 2, 1000, d, true, -1, {}, NAN, true});
  }
}

// Every tile shape the kernels are built with (the measurement overrides WICK_FLASH_TILE,
// WICK_FLASH_BWD_TILE).
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedVariable() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST_P(FlashAttention, EveryTileMatchesReference) {
  for (const char* tile : {"w1", "w4", "w8", "w4m2", "w4m2n32", "wgmma", "wgmma2"}) {
    if (std::string(tile).starts_with("wgmma") && !hopper()) continue;
    ScopedVariable variable("WICK_FLASH_TILE", tile);
    SCOPED_TRACE(tile);
    if (!std::string(tile).starts_with("wgmma")) {  // head_dim 32 (BERT-style): the mma.sync tiles
      check_forward({2, 6, 3, 257, 257, 32, true, -1, {200, 257}, NAN, true}, "cuda_flash");
      check_forward({3, 12, 12, 128, 128, 32, false, -1, {128, 17, 100}, NAN, true}, "cuda_flash");
    }
    for (int64_t d : {64, 128}) {
      check_forward({2, 6, 3, 257, 257, d, true, -1, {200, 257}, NAN, true}, "cuda_flash");
      check_forward({1, 4, 4, 130, 190, d, false}, "cuda_flash");
      check_forward({1, 14, 2, 1, 3000, d}, "cuda_flash_decode");
    }
  }
  for (const char* tile : {"k4q4", "k8q4", "k4q8", "k8q8"}) {
    ScopedVariable variable("WICK_FLASH_BWD_TILE", tile);
    SCOPED_TRACE(tile);
    for (int64_t d : {64, 128}) {
      check_backward({2, 6, 3, 257, 257, d, true, -1, {200, 257}, NAN, true});
      check_backward({1, 4, 4, 130, 190, d, false});
    }
  }
}

// The dK/dV pass unsplit and split over the query rows (partial sums added in order), including more splits
// than query tiles and splits that get no tile that sees their keys.
TEST_P(FlashAttention, BackwardSplitsMatchReference) {
  for (const char* splits : {"1", "2", "3", "8", "1000"}) {
    ScopedVariable variable("WICK_FLASH_BWD_SPLITS", splits);
    SCOPED_TRACE(std::string("splits ") + splits);
    check_backward({2, 14, 2, 130, 130, 64, true, -1, {100, 130}, NAN, true});
    check_backward({1, 6, 3, 70, 200, 128, true, -1, {}, NAN, false});
    check_backward({2, 4, 4, 33, 33, 64, false, -1, {33, 5}});
  }
}

// cuDNN's fused attention, where this binary and machine have it, on every case its masks can express
// (grouped heads, strided views, queries after a cache, custom scales, odd lengths).
TEST_P(FlashAttention, CudnnMatchesReference) {
  const std::string why = cuda::cudnn_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "cuDNN attention: " << why;
  int checked = 0;
  for (const Case& c : forward_cases()) {
    const bool bottom_right = c.query_offset < 0 && c.q_len <= c.kv_len;
    if (c.head_dim == 32 || c.q_len <= 16 || !c.kv_lengths.empty() || (c.causal && !bottom_right)) continue;
    check_forward(c, "cuda_cudnn");
    check_backward(c, "cuda_cudnn");
    ++checked;
  }
  EXPECT_GE(checked, 10);
  // Chosen by default from 2^25 score entries, where it was measured faster than the flash kernels, when
  // the caller repeats its shapes; the flash kernels otherwise (a new shape's plan costs more than it saves).
  const Case large{2, 14, 2, 1200, 1200, 64};
  const Inputs big = inputs(large);
  ops::AttentionOptions repeated = large.options(gpu);
  repeated.repeated_shape = true;
  const auto bits = [](const ops::AttentionResult& r) { return r.out.to(Device::cpu()).to(DType::f64); };
  const auto forced = [&](const char* impl) {
    ForceAttention force(impl, nullptr);
    return ops::attention(big.gq, big.gk, big.gv, large.options(gpu));
  };
  const auto cudnn = forced("cuda_cudnn"), flash = forced("cuda_flash");
  EXPECT_GT(relative_error(bits(cudnn), bits(flash)), 0.0);  // so the two checks below can tell them apart
  EXPECT_EQ(relative_error(bits(ops::attention(big.gq, big.gk, big.gv, repeated)), bits(cudnn)), 0.0);
  EXPECT_EQ(relative_error(bits(ops::attention(big.gq, big.gk, big.gv, large.options(gpu))), bits(flash)),
            0.0);
  // What its masks cannot say is refused by name.
  const Case padded{2, 4, 2, 40, 129, 64, true, -1, {129, 70}};
  const Inputs in = inputs(padded);
  ForceAttention force("cuda_cudnn", "cuda_cudnn");
  expect_error([&] { ops::attention(in.gq, in.gk, in.gv, padded.options(gpu)); },
               {"[attention] forced implementation 'cuda_cudnn' cannot run this call"});
}

// Small shapes covering every kernel (prefill, split decode + combine, backward) for compute-sanitizer.
TEST_P(FlashAttention, SanitizerSmall) {
  check_forward({2, 4, 2, 37, 70, 64, true, -1, {70, 20}}, "cuda_flash");
  check_forward({2, 3, 3, 40, 40, 32, false, -1, {40, 17}, NAN, true}, "cuda_flash");
  check_forward({1, 14, 2, 1, 300, 128}, "cuda_flash_decode");
  check_forward({2, 14, 2, 1, 300, 64, true, -1, {300, 7}}, "cuda_decode");
  check_forward({2, 14, 2, 1, 300, 128, true, -1, {300, 7}, NAN, false, true}, "cuda_decode");
  if (hopper()) {
    ScopedVariable variable("WICK_FLASH_TILE", "wgmma2");
    check_forward({2, 4, 2, 37, 150, 128, true, -1, {150, 20}}, "cuda_flash");
  }
  check_backward({2, 4, 2, 37, 70, 128, true, -1, {70, 20}});
  {
    ScopedVariable variable("WICK_FLASH_BWD_SPLITS", "1");
    check_backward({2, 4, 2, 37, 70, 64, true, -1, {70, 20}});
  }
}

TEST_P(FlashAttention, SelectedByDefaultAndReferenceStillForcible) {
  const Case c{1, 14, 2, 77, 77, 64};
  const Inputs in = inputs(c);
  const auto options = c.options(gpu);
  ops::AttentionResult flash, reference;
  {
    ForceAttention force("cuda_flash", nullptr);
    flash = ops::attention(in.gq, in.gk, in.gv, options);
  }
  const auto chosen = ops::attention(in.gq, in.gk, in.gv, options);
  EXPECT_EQ(
      relative_error(chosen.out.to(Device::cpu()).to(DType::f64), flash.out.to(Device::cpu()).to(DType::f64)),
      0.0);
  {
    ForceAttention force("cuda", "cuda");
    reference = ops::attention(in.gq, in.gk, in.gv, options);
  }
  EXPECT_LE(relative(reference.out, flash.out.to(Device::cpu()).to(DType::f64)), 2 * tolerance(dtype()));
  // What the kernels do not take is refused by name, never silently run elsewhere.
  const Tensor q48 = Tensor::zeros({1, 2, 3, 48}, dtype(), gpu);
  ForceAttention force("cuda_flash", "cuda_flash");
  expect_error([&] { ops::attention(q48, q48, q48); },
               {"[attention] forced implementation 'cuda_flash' cannot run this call"});
  const Tensor q32 = Tensor::zeros({1, 2, 3, 32}, dtype(), gpu);  // head_dim 32 has no flash backward
  const ops::AttentionResult r32 = ops::attention(q32, q32, q32);
  expect_error([&] { ops::attention_backward(q32, q32, q32, r32.out, r32.lse, q32); },
               {"[attention_backward] forced implementation 'cuda_flash' cannot run this call"});
  const Tensor q64 = Tensor::zeros({1, 2, 3, 64}, DType::f32, gpu);
  expect_error([&] { ops::attention(q64, q64, q64); }, {"'cuda_flash' cannot run this call"});
}

// ---- timing table (WICK_ATTENTION_BENCH=1) ----

struct BenchShape {
  const char* name;
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal;
  bool backward;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Median milliseconds of `body` over `repeats` timed calls after warm-up, each timed with device events.
template <typename Body>
double time_ms(int repeats, Body&& body) {
  for (int i = 0; i < 3; ++i) body(i);
  synchronize(Device::cuda(0));
  std::vector<double> times;
  cuda::Event start(0), stop(0);
  for (int i = 0; i < repeats; ++i) {
    start.record();
    body(i);
    stop.record();
    stop.synchronize();
    times.push_back(stop.elapsed_ms_since(start));
  }
  return median(times);
}

// What a new shape costs cuDNN attention the first time (its graph and plan are built once per shape),
// against a call with the plan cached; prefill lengths past the 2^25-entry line.
TEST(FlashAttentionBench, CudnnFirstCall) {
  const char* enabled = std::getenv("WICK_ATTENTION_BENCH");
  if (enabled == nullptr || std::string(enabled) != "1") GTEST_SKIP() << "set WICK_ATTENTION_BENCH=1";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  if (!cuda::cudnn_unavailable_reason().empty()) GTEST_SKIP() << cuda::cudnn_unavailable_reason();
  const Device gpu = Device::cuda(0);
  Generator gen(99);
  for (int64_t seq : {1600, 1601, 2048, 3000}) {
    const Tensor q = rand_normal({1, 14, seq, 64}, gen, 0.0, 1.0, DType::bf16).to(gpu);
    const Tensor kv = rand_normal({1, 2, seq, 64}, gen, 0.0, 1.0, DType::bf16).to(gpu);
    ops::AttentionOptions options;
    options.repeated_shape = true;
    std::vector<double> ms;
    for (int call = 0; call < 3; ++call) {
      synchronize(gpu);
      const auto start = std::chrono::steady_clock::now();
      ops::attention(q, kv, kv, options);
      synchronize(gpu);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("cudnn first call 1x14x%lldx64 (2 kv heads): %.2f ms, then %.3f / %.3f ms\n",
                static_cast<long long>(seq), ms[0], ms[1], ms[2]);
  }
}

TEST(FlashAttentionBench, Table) {
  const char* enabled = std::getenv("WICK_ATTENTION_BENCH");
  if (enabled == nullptr || std::string(enabled) != "1") GTEST_SKIP() << "set WICK_ATTENTION_BENCH=1";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Device gpu = Device::cuda(0);
  const char* csv_path = std::getenv("WICK_ATTENTION_BENCH_CSV");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  const int repeats = 20;
  std::vector<BenchShape> shapes = {
      {"fwd 4x14x512x64", 4, 14, 14, 512, 512, 64, true, false},
      {"fwd 1x14x4096x64", 1, 14, 14, 4096, 4096, 64, true, false},
      {"fwd 8x32x1024x128", 8, 32, 32, 1024, 1024, 128, true, false},
      {"fwd 1x32x8192x128", 1, 32, 32, 8192, 8192, 128, true, false},
      {"fwdbwd 4x14x512x64", 4, 14, 14, 512, 512, 64, true, true},
      {"fwdbwd 1x14x4096x64", 1, 14, 14, 4096, 4096, 64, true, true},
      {"fwdbwd 8x32x1024x128", 8, 32, 32, 1024, 1024, 128, true, true},
      {"fwdbwd 1x32x8192x128", 1, 32, 32, 8192, 8192, 128, true, true},
      {"decode kv512", 1, 14, 2, 1, 512, 64, false, false},
      {"decode kv4096", 1, 14, 2, 1, 4096, 64, false, false},
      {"decode kv32768", 1, 14, 2, 1, 32768, 64, false, false},
  };
  std::printf("%-24s %-22s %10s %10s\n", "case", "implementation", "ms", "TFLOP/s");
  Generator gen(1234);
  for (const BenchShape& s : shapes) {
    // Enough input sets that the rotation does not run out of L2 (50 MB on an H100).
    const double set_bytes =
        2.0 * (2 * s.batch * s.q_heads * s.q_len + 2 * s.batch * s.kv_heads * s.kv_len) * s.head_dim;
    const int sets = static_cast<int>(std::clamp(std::ceil(200e6 / set_bytes), 1.0, 8.0));
    std::vector<Tensor> qs, ks, vs, gs;
    for (int i = 0; i < sets; ++i) {
      qs.push_back(
          rand_normal({s.batch, s.q_heads, s.q_len, s.head_dim}, gen, 0.0, 1.0, DType::bf16).to(gpu));
      ks.push_back(
          rand_normal({s.batch, s.kv_heads, s.kv_len, s.head_dim}, gen, 0.0, 1.0, DType::bf16).to(gpu));
      vs.push_back(
          rand_normal({s.batch, s.kv_heads, s.kv_len, s.head_dim}, gen, 0.0, 1.0, DType::bf16).to(gpu));
      gs.push_back(
          rand_normal({s.batch, s.q_heads, s.q_len, s.head_dim}, gen, 0.0, 1.0, DType::bf16).to(gpu));
    }
    ops::AttentionOptions options;
    options.causal = s.causal;
    options.repeated_shape = true;  // timed over many calls
    double flops = 4.0 * s.batch * s.q_heads * s.q_len * s.kv_len * s.head_dim * (s.causal ? 0.5 : 1.0);
    if (s.backward) flops *= 3.5;
    // (label, implementation, WICK_FLASH_TILE, WICK_FLASH_BWD_TILE); the first is the op's default choice
    // (nothing forced), the others force one implementation or tile.
    struct Variant {
      std::string label, impl, tile, bwd_tile;
    };
    std::vector<Variant> variants;
    if (s.q_len <= 16) {
      variants = {{"cuda_flash_decode", "cuda_flash_decode", "", ""}, {"cuda_flash", "cuda_flash", "", ""}};
    } else if (!s.backward) {
      variants = {{"cuda_flash", "cuda_flash", "", ""}};
      for (const char* tile : {"w4", "w8", "w4m2", "w4m2n32", "wgmma", "wgmma2"})
        if (!std::string(tile).starts_with("wgmma") || hopper())
          variants.push_back({std::string("cuda_flash ") + tile, "cuda_flash", tile, ""});
    } else {
      variants = {{"cuda_flash", "cuda_flash", "", ""}};
      for (const char* tile : {"k4q4", "k8q4", "k4q8", "k8q8"})
        variants.push_back({std::string("cuda_flash ") + tile, "cuda_flash", "", tile});
    }
    variants.insert(variants.begin(), {"default", "", "", ""});
    if (s.q_len > 16 && cuda::cudnn_unavailable_reason().empty())
      variants.push_back({"cuda_cudnn", "cuda_cudnn", "", ""});
    if (s.batch * s.q_heads * s.q_len * s.kv_len <= (int64_t(1) << 28))
      variants.push_back({"cuda", "cuda", "", ""});
    for (const Variant& variant : variants) {
      if (!variant.tile.empty()) setenv("WICK_FLASH_TILE", variant.tile.c_str(), 1);
      if (!variant.bwd_tile.empty()) setenv("WICK_FLASH_BWD_TILE", variant.bwd_tile.c_str(), 1);
      const std::string& impl = variant.impl;
      const std::string& label = variant.label;
      double ms = 0;
      {
        ForceAttention force(impl.c_str(), impl == "cuda_flash_decode" ? "cuda_flash" : impl.c_str());
        ms = time_ms(repeats, [&](int i) {
          const int set = i % sets;
          const auto r = ops::attention(qs[set], ks[set], vs[set], options);
          if (s.backward) ops::attention_backward(qs[set], ks[set], vs[set], r.out, r.lse, gs[set], options);
        });
      }
      unsetenv("WICK_FLASH_TILE");
      unsetenv("WICK_FLASH_BWD_TILE");
      const double tflops = flops / (ms * 1e-3) / 1e12;
      std::printf("%-24s %-22s %10.4f %10.1f\n", s.name, label.c_str(), ms, tflops);
      if (csv) std::fprintf(csv, "%s,%s,%.6f,%.3f\n", s.name, label.c_str(), ms, tflops);
    }
    std::fflush(stdout);
  }
  if (csv) std::fclose(csv);
}

}  // namespace
}  // namespace wick::test
