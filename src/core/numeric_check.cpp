#include "wick/numeric_check.h"

#include <cmath>

#include "wick/error.h"

namespace wick {

double relative_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) fail("relative_error", "shapes differ: {} vs {}", a.str(), b.str());
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff += (x[i] - y[i]) * (x[i] - y[i]);
    norm += y[i] * y[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

static double weighted_sum(const Tensor& t, const std::vector<double>& weights) {
  const std::vector<double> values = t.to_vector<double>();
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) sum += values[i] * weights[i];
  return sum;
}

std::vector<double> finite_difference(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                                      const Tensor& weights, const std::vector<int64_t>& indices, double h) {
  if (x.dtype() != DType::f64 || !x.device().is_cpu())
    fail("finite_difference", "x must be an f64 cpu tensor, got {}", x.str());
  const std::vector<double> w = weights.to_vector<double>();
  std::vector<double> grads;
  for (int64_t index : indices) {
    if (index < 0 || index >= x.numel())
      fail("finite_difference", "index {} is outside x with {} elements", index, x.numel());
    Tensor shifted = x.clone();
    double* data = shifted.data<double>();
    const double original = data[index];
    data[index] = original + h;
    const double up = weighted_sum(f(shifted), w);
    data[index] = original - h;
    const double down = weighted_sum(f(shifted), w);
    grads.push_back((up - down) / (2 * h));
  }
  return grads;
}

}  // namespace wick
