#include "wick/ops/loss.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct CrossEntropyCall {
  const Tensor& logits;
  const Tensor& targets;
  int64_t ignore_index;
  double grad;
  const Tensor& out;  // the loss (forward) or dlogits (backward)
};

void check_args(std::string_view op, const Tensor& logits, const Tensor& targets) {
  check_floating(op, "logits", logits);
  check_rank(op, "logits", logits, 2);
  check_index_dtype(op, "targets", targets);
  check_shape(op, "targets", targets, {logits.size(0)});
  check_same_device(op, {{"logits", &logits}, {"targets", &targets}});
  if (logits.size(1) == 0) fail(op, "logits need at least one class, got {}", logits.str());
}

void check_targets(std::string_view op, const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  check_args(op, logits, targets);
  check_index_range(op, "target", targets, logits.size(1), ignore_index);
}

bool cpu_call(const CrossEntropyCall& c) {
  return on_cpu({&c.logits, &c.targets});
}
#ifdef WICK_WITH_CUDA
bool cuda_call(const CrossEntropyCall& c) {
  return on_cuda({&c.logits, &c.targets});
}
#endif

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  constexpr std::string_view op = "cross_entropy";
  check_targets(op, logits, targets, ignore_index);
  Tensor loss = Tensor::empty({}, logits.dtype() == DType::f64 ? DType::f64 : DType::f32, logits.device());
  static const std::vector<Implementation<CrossEntropyCall>> table = {
      {"cpu", "cpu tensors", cpu_call,
       [](const CrossEntropyCall& c) { cpu::cross_entropy(c.logits, c.targets, c.ignore_index, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", cuda_call,
       [](const CrossEntropyCall& c) { cuda::cross_entropy(c.logits, c.targets, c.ignore_index, c.out); }},
#endif
  };
  dispatch(op, table, CrossEntropyCall{logits, targets, ignore_index, 1.0, loss},
           describe({{"logits", &logits}, {"targets", &targets}}));
  return loss;
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                              double grad) {
  constexpr std::string_view op = "cross_entropy_backward";
  check_targets(op, logits, targets, ignore_index);
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  static const std::vector<Implementation<CrossEntropyCall>> table = {
      {"cpu", "cpu tensors", cpu_call,
       [](const CrossEntropyCall& c) {
         cpu::cross_entropy_backward(c.logits, c.targets, c.ignore_index, c.grad, c.out);
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", cuda_call,
       [](const CrossEntropyCall& c) {
         cuda::cross_entropy_backward(c.logits, c.targets, c.ignore_index, c.grad, c.out);
       }},
#endif
  };
  dispatch(op, table, CrossEntropyCall{logits, targets, ignore_index, grad, dlogits},
           describe({{"logits", &logits}, {"targets", &targets}}));
  return dlogits;
}

CrossEntropyWithGrad cross_entropy_with_grad(const Tensor& logits, const Tensor& targets,
                                             int64_t ignore_index, double grad) {
  constexpr std::string_view op = "cross_entropy_with_grad";
  check_targets(op, logits, targets, ignore_index);
  CrossEntropyWithGrad result{
      Tensor::empty({}, logits.dtype() == DType::f64 ? DType::f64 : DType::f32, logits.device()),
      Tensor::empty(logits.shape(), logits.dtype(), logits.device())};
  struct Call {
    const Tensor& logits;
    const Tensor& targets;
    int64_t ignore_index;
    double grad;
    const CrossEntropyWithGrad& out;
  };
  static const std::vector<Implementation<Call>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const Call& c) {
         return on_cuda({&c.logits, &c.targets});
       },
       [](const Call& c) {
         cuda::cross_entropy_with_grad(c.logits, c.targets, c.ignore_index, c.grad, c.out.loss,
                                       c.out.dlogits);
       }},
#endif
      {"composed", "nothing (the forward, then the backward, on any device)",
       [](const Call&) { return true; },
       [](const Call& c) {
         c.out.loss.copy_(cross_entropy(c.logits, c.targets, c.ignore_index));
         c.out.dlogits.copy_(cross_entropy_backward(c.logits, c.targets, c.ignore_index, c.grad));
       }},
  };
  dispatch(op, table, Call{logits, targets, ignore_index, grad, result},
           describe({{"logits", &logits}, {"targets", &targets}}));
  return result;
}

}  // namespace wick::ops
