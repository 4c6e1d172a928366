// `wick bench ops`: times the core ops on one device (median of repeated calls after warm-up, inputs rotated
// between three sets so caches do not flatter the numbers; CUDA calls timed with events and including launch)
// and reports GFLOP/s or GB/s. --json writes one line per case for bench/compare_ops.py.
#include <fmt/core.h>
#include <fmt/os.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "cli/commands.h"
#include "wick/cuda.h"

#include "wick/wick.h"

namespace wick::cli {
namespace {

struct Case {
  std::string name;
  double flops;                                           // per call (0 when the op is bandwidth-bound)
  double bytes;                                           // fewest bytes one call must move
  std::function<std::function<void()>(Generator&)> make;  // builds one input set, returns the call
};

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

double median_ms(const std::vector<std::function<void()>>& calls, Device device, int repeats) {
  for (int warm = 0; warm < 3; ++warm)
    for (const auto& call : calls) call();
  synchronize(device);
  std::vector<double> times;
  if (device.is_cuda()) {
    cuda::Event start(device.index), stop(device.index);
    for (int r = 0; r < repeats; ++r) {
      start.record();
      calls[r % calls.size()]();
      stop.record();
      stop.synchronize();
      times.push_back(stop.elapsed_ms_since(start));
    }
  } else {
    for (int r = 0; r < repeats; ++r) {
      const auto begin = std::chrono::steady_clock::now();
      calls[r % calls.size()]();
      times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count());
    }
  }
  return median(times);
}

std::vector<Case> cases(Device device, DType dtype) {
  auto randn = [=](Generator& g, const Shape& s, DType t) { return rand_normal(s, g, 0, 1, t, device); };
  std::vector<Case> list;
  const bool gpu = device.is_cuda();
  auto add_matmul = [&](int64_t n, DType t, bool tf32, const std::string& label) {
    const double e = static_cast<double>(dtype_size(t));
    list.push_back(
        {fmt::format("matmul {} n={}", label, n), 2.0 * n * n * n, 3.0 * n * n * e, [=](Generator& g) {
           Tensor a = randn(g, {n, n}, t), b = randn(g, {n, n}, t), c = randn(g, {n, n}, t);
           ops::GemmOptions options;
           options.allow_tf32 = tf32;
           return std::function<void()>([=] { ops::gemm(a, b, c, options); });
         }});
  };
  const std::vector<int64_t> sizes =
      gpu ? std::vector<int64_t>{512, 1024, 2048, 4096} : std::vector<int64_t>{256, 512, 1024};
  if (gpu) {
    for (int64_t n : sizes) add_matmul(n, DType::bf16, false, "bf16");
    for (int64_t n : sizes) add_matmul(n, DType::f32, false, "f32");
    for (int64_t n : sizes) add_matmul(n, DType::f32, true, "tf32");
  } else {
    for (int64_t n : sizes) add_matmul(n, dtype, false, std::string(dtype_name(dtype)));
  }
  const std::vector<DType> row_dtypes =
      gpu ? std::vector<DType>{DType::f32, DType::bf16} : std::vector<DType>{dtype};
  const std::vector<std::pair<int64_t, int64_t>> softmax_shapes =
      gpu ? std::vector<std::pair<int64_t, int64_t>>{{1024, 1024}, {4096, 4096}, {8192, 18992}}
          : std::vector<std::pair<int64_t, int64_t>>{{1024, 1024}};
  const std::vector<std::pair<int64_t, int64_t>> norm_shapes =
      gpu ? std::vector<std::pair<int64_t, int64_t>>{{4096, 896}, {16384, 896}, {4096, 4096}}
          : std::vector<std::pair<int64_t, int64_t>>{{4096, 896}};
  for (DType t : row_dtypes) {
    const double e = static_cast<double>(dtype_size(t));
    for (auto [rows, cols] : softmax_shapes)
      list.push_back({fmt::format("softmax {} {}x{}", dtype_name(t), rows, cols), 0, 2.0 * rows * cols * e,
                      [=](Generator& g) {
                        Tensor x = randn(g, {rows, cols}, t);
                        return std::function<void()>([=] { ops::softmax(x); });
                      }});
    for (auto [rows, cols] : norm_shapes)
      list.push_back({fmt::format("rms_norm {} {}x{}", dtype_name(t), rows, cols), 0, 2.0 * rows * cols * e,
                      [=](Generator& g) {
                        Tensor x = randn(g, {rows, cols}, t), w = randn(g, {cols}, t);
                        return std::function<void()>([=] { ops::rms_norm(x, w, 1e-6); });
                      }});
  }
  if (gpu) {
    for (auto [tokens, features] : std::vector<std::pair<int64_t, int64_t>>{{4096, 896}, {4096, 4096}}) {
      const double base_flops = 2.0 * tokens * features * features, rank = 16;
      const double e = 2;  // bf16
      list.push_back({fmt::format("linear bf16 {}x{}->{}", tokens, features, features), base_flops,
                      (2.0 * tokens * features + features * features) * e, [=](Generator& g) {
                        Tensor x = randn(g, {tokens, features}, DType::bf16),
                               w = randn(g, {features, features}, DType::bf16);
                        return std::function<void()>([=] { ops::matmul(x, w, false, true); });
                      }});
      list.push_back(
          {fmt::format("lora_linear bf16 {}x{}->{} r16", tokens, features, features),
           base_flops + 4.0 * tokens * features * rank, (2.0 * tokens * features + features * features) * e,
           [=](Generator& g) {
             Tensor x = randn(g, {tokens, features}, DType::bf16),
                    w = randn(g, {features, features}, DType::bf16);
             Tensor a = randn(g, {16, features}, DType::bf16), b = randn(g, {features, 16}, DType::bf16);
             return std::function<void()>([=] { ops::lora_linear(x, w, a, b, 2.0); });
           }});
      list.push_back({fmt::format("lora_linear packed bf16 {}x{}->{} r16", tokens, features, features),
                      base_flops + 4.0 * tokens * features * rank,
                      (2.0 * tokens * features + features * features) * e, [=](Generator& g) {
                        Tensor x = randn(g, {tokens, features}, DType::bf16);
                        const auto p = ops::pack_lora_weights(randn(g, {features, features}, DType::bf16),
                                                              randn(g, {16, features}, DType::bf16));
                        Tensor b = randn(g, {features, 16}, DType::bf16);
                        return std::function<void()>([=] { ops::lora_linear(x, p.w, p.a, b, 2.0); });
                      }});
    }
    // Decode shapes (one token through Qwen2.5-0.5B's linears and lm_head), each GEMM implementation forced.
    for (auto [k, n] :
         std::vector<std::pair<int64_t, int64_t>>{{896, 896}, {896, 4864}, {4864, 896}, {896, 151936}}) {
      for (const char* impl : {"cuda_gemv", "cublaslt"}) {
        list.push_back({fmt::format("decode gemm bf16 1x{}->{} {}", k, n, impl), 2.0 * k * n, 2.0 * k * n,
                        [=](Generator& g) {
                          Tensor x = randn(g, {1, k}, DType::bf16), w = randn(g, {n, k}, DType::bf16);
                          Tensor y = Tensor::empty({1, n}, DType::bf16, device);
                          ops::GemmOptions options;
                          options.transpose_b = true;
                          return std::function<void()>([=] {
                            setenv("WICK_IMPL_GEMM", impl, 1);
                            ops::gemm(x, w, y, options);
                            unsetenv("WICK_IMPL_GEMM");
                          });
                        }});
      }
    }
    const int64_t n = 64 << 20;  // 256 MiB of f32
    list.push_back({"device copy 256MiB", 0, 2.0 * n * 4, [=](Generator& g) {
                      Tensor src = randn(g, {n}, DType::f32), dst = Tensor::empty({n}, DType::f32, device);
                      return std::function<void()>([=] { dst.copy_(src); });
                    }});
  } else {
    const double e = static_cast<double>(dtype_size(dtype));
    list.push_back({"attention 1x14x256x64 causal", 2.0 * 14 * 256 * 256 * 64, 4.0 * 14 * 256 * 64 * e,
                    [=](Generator& g) {
                      Tensor q = randn(g, {1, 14, 256, 64}, dtype), k = randn(g, {1, 2, 256, 64}, dtype),
                             v = randn(g, {1, 2, 256, 64}, dtype);
                      return std::function<void()>([=] { ops::attention(q, k, v); });
                    }});
  }
  return list;
}

void run_bench(Device device, DType dtype, int repeats, const std::string& json_path) {
  Generator gen(1);
  fmt::print("wick op benchmark on {}, median of {} calls\n", device.str(), repeats);
  fmt::print("{:<34} {:>12} {:>12} {:>10}\n", "op", "time (ms)", "GFLOP/s", "GB/s");
  std::string json;
  for (const auto& c : cases(device, dtype)) {
    std::vector<std::function<void()>> calls;
    for (int set = 0; set < 3; ++set) calls.push_back(c.make(gen));
    const double ms = median_ms(calls, device, repeats);
    fmt::print("{:<34} {:>12.4f} {:>12} {:>10.1f}\n", c.name, ms,
               c.flops > 0 ? fmt::format("{:.1f}", c.flops / ms / 1e6) : "-", c.bytes / ms / 1e6);
    json += fmt::format("{{\"name\": \"{}\", \"ms\": {:.6f}, \"flops\": {}, \"bytes\": {}}}\n", c.name, ms,
                        c.flops, c.bytes);
  }
  if (!json_path.empty()) {
    auto file = fmt::output_file(json_path);
    file.print("{}", json);
  }
}

// Sentence embeddings with random weights of all-MiniLM-L6-v2's shape: latency at batch 1 and throughput on
// two document sets, each timed as one embed() call over token ids made in advance.
void run_embed_bench(Device device, DType dtype, int repeats, const std::string& json_path) {
  nlohmann::json shape = {
      {"model_type", "bert"},           {"vocab_size", 30522},    {"hidden_size", 384},
      {"intermediate_size", 1536},      {"num_hidden_layers", 6}, {"num_attention_heads", 12},
      {"max_position_embeddings", 512}, {"type_vocab_size", 2}};
  const auto config = models::parse_config(shape, "all-MiniLM-L6-v2 shape");
  const models::BertEncoder model(config, models::RandomWeights(5), device, dtype);
  fmt::print("wick embed benchmark on {} ({}), MiniLM shape, median of {} calls\n", device.str(),
             dtype_name(dtype), repeats);
  std::string json;
  Generator gen(9);
  for (auto [docs, tokens] : std::vector<std::pair<int64_t, int64_t>>{{1, 16}, {100, 32}, {1000, 128}}) {
    std::vector<std::function<void()>> calls;
    for (int set = 0; set < 3; ++set) {
      const Tensor ids = rand_uniform({docs, tokens}, gen, 1000, 30000, DType::f32).to(DType::i64);
      const Tensor mask = Tensor::full({docs, tokens}, 1, DType::i64);
      calls.push_back([&model, ids, mask] { model.embed(ids, mask); });
    }
    const double ms = median_ms(calls, device, repeats);
    const std::string name = fmt::format("embed {} docs x {} tokens", docs, tokens);
    fmt::print("{:<30} {:>10.4f} ms {:>12.0f} docs/s\n", name, ms, docs / ms * 1e3);
    json += fmt::format("{{\"name\": \"{}\", \"ms\": {:.6f}, \"flops\": 0, \"bytes\": 0}}\n", name, ms);
  }
  if (!json_path.empty()) fmt::output_file(json_path).print("{}", json);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* command = bench->add_subcommand("ops", "Time the core ops on fixed shapes");
  static std::string device = "cpu", dtype = "f32", json;
  static int repeats = 20;
  command->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--dtype", dtype, "f32, bf16, f16 or f64 (cpu; the cuda set covers bf16, f32, tf32)")
      ->capture_default_str();
  command->add_option("--repeats", repeats, "timed calls per op")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--json", json, "also write one JSON line per case to this file");
  command->callback([] { run_bench(device_from_name(device), dtype_from_name(dtype), repeats, json); });
  auto* embed = bench->add_subcommand("embed", "Time sentence embeddings with a MiniLM-shaped model");
  embed->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  embed->add_option("--dtype", dtype, "f32, bf16 or f16")->capture_default_str();
  embed->add_option("--repeats", repeats, "timed calls per case")->capture_default_str();
  embed->add_option("--json", json, "also write one JSON line per case to this file");
  embed->callback([] { run_embed_bench(device_from_name(device), dtype_from_name(dtype), repeats, json); });
  add_model_bench_commands(bench);
}

}  // namespace wick::cli
