// Numerical comparison helpers shared by `wick selfcheck` and the tests.
#pragma once

#include <functional>
#include <vector>

#include "wick/tensor.h"

namespace wick {

// ‖a − b‖₂ / ‖b‖₂ over all elements, computed in double on the host (NaN anywhere gives NaN; ‖b‖ = 0 gives
// ‖a − b‖).
double relative_error(const Tensor& a, const Tensor& b);

// Central finite differences of the scalar L(x) = Σ f(x) ∘ weights at the given flat indices of x (an f64 cpu
// tensor), with step h. Returns dL/dx at those indices.
std::vector<double> finite_difference(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                                      const Tensor& weights, const std::vector<int64_t>& indices,
                                      double h = 1e-6);

}  // namespace wick
