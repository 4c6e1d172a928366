// `wick bench ops`: times the core ops on one device on fixed shapes (median of repeated calls, inputs
// rotated between several sets so caches do not flatter the numbers) and reports GFLOP/s or GB/s.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "wick/wick.h"

namespace wick::cli {
namespace {

struct Case {
  std::string name;
  double flops;                                           // per call (0 when the op is bandwidth-bound)
  double bytes;                                           // fewest bytes one call must move
  std::function<std::function<void()>(Generator&)> make;  // builds inputs, returns the call
};

double median_seconds(const std::vector<std::function<void()>>& calls, Device device, int repeats) {
  for (const auto& call : calls) call();  // warm-up
  synchronize(device);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto& call = calls[r % calls.size()];
    const auto start = std::chrono::steady_clock::now();
    call();
    synchronize(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

std::vector<Case> cases(Device device, DType dtype) {
  const double e = static_cast<double>(dtype_size(dtype));
  auto randn = [=](Generator& g, const Shape& s) { return rand_normal(s, g, 0, 1, dtype, device); };
  std::vector<Case> list;
  for (int64_t n : {256, 512, 1024}) {
    list.push_back(
        {fmt::format("matmul {0}x{0}x{0}", n), 2.0 * n * n * n, 3.0 * n * n * e, [=](Generator& g) {
           Tensor a = randn(g, {n, n}), b = randn(g, {n, n}), c = randn(g, {n, n});
           return std::function<void()>([=] { ops::gemm(a, b, c); });
         }});
  }
  list.push_back({"softmax 1024x1024", 0, 2.0 * 1024 * 1024 * e, [=](Generator& g) {
                    Tensor x = randn(g, {1024, 1024});
                    return std::function<void()>([=] { ops::softmax(x); });
                  }});
  list.push_back({"rms_norm 4096x896", 0, 2.0 * 4096 * 896 * e, [=](Generator& g) {
                    Tensor x = randn(g, {4096, 896}), w = randn(g, {896});
                    return std::function<void()>([=] { ops::rms_norm(x, w, 1e-6); });
                  }});
  list.push_back(
      {"attention 1x14x256x64 causal", 2.0 * 14 * 256 * 256 * 64, 4.0 * 14 * 256 * 64 * e, [=](Generator& g) {
         Tensor q = randn(g, {1, 14, 256, 64}), k = randn(g, {1, 2, 256, 64}), v = randn(g, {1, 2, 256, 64});
         return std::function<void()>([=] { ops::attention(q, k, v); });
       }});
  list.push_back({"cross_entropy 256x32000", 0, 256.0 * 32000 * e, [=](Generator& g) {
                    Tensor x = randn(g, {256, 32000});
                    Tensor t = Tensor::full({256}, 7, DType::i64, device);
                    return std::function<void()>([=] { ops::cross_entropy(x, t); });
                  }});
  return list;
}

void run_bench(Device device, DType dtype, int repeats) {
  Generator gen(1);
  fmt::print("wick op benchmark on {} ({}), median of {} calls\n", device.str(), dtype_name(dtype), repeats);
  fmt::print("{:<32} {:>12} {:>12} {:>10}\n", "op", "time (ms)", "GFLOP/s", "GB/s");
  for (const auto& c : cases(device, dtype)) {
    std::vector<std::function<void()>> calls;
    for (int set = 0; set < 3; ++set) calls.push_back(c.make(gen));
    const double seconds = median_seconds(calls, device, repeats);
    fmt::print("{:<32} {:>12.3f} {:>12} {:>10.1f}\n", c.name, seconds * 1e3,
               c.flops > 0 ? fmt::format("{:.1f}", c.flops / seconds / 1e9) : "-", c.bytes / seconds / 1e9);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* command = bench->add_subcommand("ops", "Time the core ops on fixed shapes");
  static std::string device = "cpu", dtype = "f32";
  static int repeats = 20;
  command->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--dtype", dtype, "f32, bf16, f16 or f64")->capture_default_str();
  command->add_option("--repeats", repeats, "timed calls per op")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->callback([] { run_bench(device_from_name(device), dtype_from_name(dtype), repeats); });
}

}  // namespace wick::cli
