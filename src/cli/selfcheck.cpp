// `wick selfcheck`: runs every op on the chosen device and dtype against the same op in f64 on the CPU, and
// checks the backward ops against finite differences in f64. Exits non-zero when any check fails.
#include <fmt/core.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "wick/wick.h"

namespace wick::cli {
namespace {

struct Check {
  std::string name;
  // Runs the op with inputs converted to (device, dtype); returns its output (or a concatenation of outputs).
  std::function<Tensor(const std::vector<Tensor>&)> run;
  std::vector<Tensor> inputs;  // f64 cpu
};

std::vector<Check> forward_checks(Generator& gen) {
  auto randn = [&](const Shape& s) { return rand_normal(s, gen, 0, 1, DType::f64); };
  std::vector<Check> checks;
  checks.push_back({"gemm batched, transposed B",
                    [](const std::vector<Tensor>& in) { return ops::matmul(in[0], in[1], false, true); },
                    {randn({3, 37, 29}), randn({41, 29})}});
  checks.push_back({"softmax causal",
                    [](const std::vector<Tensor>& in) {
                      ops::SoftmaxMask mask;
                      mask.causal = true;
                      return ops::softmax(in[0], -1, mask);
                    },
                    {rand_normal({2, 3, 17, 17}, gen, 0, 8, DType::f64)}});
  checks.push_back({"rms_norm",
                    [](const std::vector<Tensor>& in) { return ops::rms_norm(in[0], in[1], 1e-6); },
                    {randn({33, 96}), randn({96})}});
  checks.push_back({"layer_norm",
                    [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-12); },
                    {randn({33, 96}), randn({96}), randn({96})}});
  checks.push_back({"rope",
                    [](const std::vector<Tensor>& in) {
                      ops::RopeOptions options;
                      options.position_offset = 5;
                      return ops::rope(in[0], options);
                    },
                    {randn({2, 9, 3, 32})}});
  checks.push_back({"swiglu",
                    [](const std::vector<Tensor>& in) { return ops::swiglu(in[0], in[1]); },
                    {randn({7, 130}), randn({7, 130})}});
  checks.push_back(
      {"gelu", [](const std::vector<Tensor>& in) { return ops::gelu(in[0]); }, {randn({7, 130})}});
  checks.push_back({"attention gqa causal",
                    [](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2]).out; },
                    {randn({2, 4, 13, 16}), randn({2, 2, 13, 16}), randn({2, 2, 13, 16})}});
  checks.push_back(
      {"cross_entropy",
       [](const std::vector<Tensor>& in) {
         Tensor targets = Tensor::from_vector<int64_t>({3, 7, -100, 300, 0}, {5}, in[0].device());
         return ops::cross_entropy(in[0], targets);
       },
       {rand_normal({5, 301}, gen, 0, 4, DType::f64)}});
  return checks;
}

struct GradCheck {
  std::string name;
  std::function<Tensor(const Tensor&)> forward;                  // x -> out
  std::function<Tensor(const Tensor&, const Tensor&)> backward;  // (x, dout) -> dx
  Tensor x;
  Shape out_shape;
};

std::vector<GradCheck> gradient_checks(Generator& gen) {
  auto randn = [&](const Shape& s) { return rand_normal(s, gen, 0, 1, DType::f64); };
  std::vector<GradCheck> checks;
  const Tensor weight = randn({24});
  checks.push_back(
      {"rms_norm backward",
       [=](const Tensor& x) { return ops::rms_norm(x, weight, 1e-6); },
       [=](const Tensor& x, const Tensor& dy) { return ops::rms_norm_backward(x, weight, dy, 1e-6).dx; },
       randn({5, 24}),
       {5, 24}});
  checks.push_back(
      {"softmax backward",
       [](const Tensor& x) { return ops::softmax(x); },
       [](const Tensor& x, const Tensor& dy) { return ops::softmax_backward(ops::softmax(x), dy); },
       randn({4, 11}),
       {4, 11}});
  const Tensor k = randn({1, 2, 9, 8}), v = randn({1, 2, 9, 8});
  checks.push_back({"attention backward (dq)",
                    [=](const Tensor& q) { return ops::attention(q, k, v).out; },
                    [=](const Tensor& q, const Tensor& dout) {
                      const auto result = ops::attention(q, k, v);
                      return ops::attention_backward(q, k, v, result.out, result.lse, dout).dq;
                    },
                    randn({1, 4, 9, 8}),
                    {1, 4, 9, 8}});
  const Tensor targets = Tensor::from_vector<int64_t>({1, -100, 6}, {3});
  checks.push_back({"cross_entropy backward",
                    [=](const Tensor& x) { return ops::cross_entropy(x, targets); },
                    [=](const Tensor& x, const Tensor& dy) {
                      return ops::cross_entropy_backward(x, targets, -100, dy.item());
                    },
                    randn({3, 7}),
                    {}});
  return checks;
}

double tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1e-12;
    case DType::f32:
      return 1e-5;
    default:
      return 1e-2;
  }
}

int run_selfcheck(Device device, DType dtype, uint64_t seed) {
  Generator gen(seed);
  int failures = 0;
  fmt::print("{:<30} {:>6} {:>12} {:>10}  {}\n", "check", "dtype", "rel. error", "tolerance", "result");
  for (const auto& check : forward_checks(gen)) {
    std::vector<Tensor> converted;
    for (const auto& t : check.inputs) converted.push_back(t.to(dtype).to(device));
    const Tensor result = check.run(converted);
    // The reference sees the inputs rounded to `dtype` too, so only the op's own error is measured.
    std::vector<Tensor> rounded;
    for (const auto& t : check.inputs) rounded.push_back(t.to(dtype).to(DType::f64));
    const double error = relative_error(result, check.run(rounded));
    const bool ok = error <= tolerance(dtype);
    failures += ok ? 0 : 1;
    fmt::print("{:<30} {:>6} {:>12.3e} {:>10.0e}  {}\n", check.name, dtype_name(dtype), error,
               tolerance(dtype), ok ? "ok" : "FAILED");
  }
  for (const auto& check : gradient_checks(gen)) {
    const Tensor dout = rand_normal(check.out_shape, gen, 0, 1, DType::f64);
    const Tensor analytic = check.backward(check.x, dout);
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < check.x.numel(); i += std::max<int64_t>(1, check.x.numel() / 16))
      indices.push_back(i);
    const auto numeric = finite_difference(check.forward, check.x, dout, indices);
    const std::vector<double> all = analytic.to_vector<double>();
    std::vector<double> picked;
    for (int64_t i : indices) picked.push_back(all[i]);
    const int64_t n = static_cast<int64_t>(picked.size());
    const double error = relative_error(Tensor::from_vector(picked, {n}), Tensor::from_vector(numeric, {n}));
    const bool ok = error <= 1e-6;
    failures += ok ? 0 : 1;
    fmt::print("{:<30} {:>6} {:>12.3e} {:>10.0e}  {}\n", check.name, "f64", error, 1e-6,
               ok ? "ok" : "FAILED");
  }
  fmt::print("{}\n", failures == 0 ? "all checks passed" : fmt::format("{} check(s) FAILED", failures));
  return failures == 0 ? 0 : 1;
}

}  // namespace

void add_selfcheck_command(CLI::App& app) {
  auto* command = app.add_subcommand("selfcheck",
                                     "Check every op against f64 and its backward against finite "
                                     "differences");
  static std::string device = "cpu", dtype = "f32";
  static uint64_t seed = 0;
  command->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--dtype", dtype, "f32, bf16, f16 or f64")->capture_default_str();
  command->add_option("--seed", seed, "random seed for the inputs")->capture_default_str();
  command->callback([] {
    const int status = run_selfcheck(device_from_name(device), dtype_from_name(dtype), seed);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace wick::cli
