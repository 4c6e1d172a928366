// ops::swiglu_lora_backward: SwiGLU's backward with the LoRA weight gradients that read its tensors. The
// composition (any device) runs swiglu_backward and takes the three gradients as GEMMs (h from the caller,
// or formed again with swiglu); CUDA's fused kernel does the same in one pass.
#include "wick/ops/lora.h"

#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"
#include "wick/ops/gemm.h"

namespace wick::ops {
namespace {

struct SwigluLoraCall {
  const Tensor& gate;
  const Tensor& up;
  const Tensor& dh;
  const Tensor& xa_gate;
  const Tensor& xa_up;
  const Tensor& dxa_down;
  double scale;
  const SwigluGrads& into;
  const SwigluLoraGrads& grads;
  bool accumulate;
  const Tensor& h;  // undefined: not kept
};

GemmOptions transposed_a(double alpha, bool accumulate) {
  GemmOptions o;
  o.transpose_a = true;
  o.alpha = alpha;
  o.beta = accumulate ? 1.0 : 0.0;
  return o;
}

void composed(const SwigluLoraCall& c) {
  swiglu_backward(c.gate, c.up, c.dh, c.into);
  gemm(c.into.dgate, c.xa_gate, c.grads.db_gate, transposed_a(c.scale, c.accumulate));
  gemm(c.into.dup, c.xa_up, c.grads.db_up, transposed_a(c.scale, c.accumulate));
  gemm(c.dxa_down, c.h.defined() ? c.h : swiglu(c.gate, c.up), c.grads.da_down,
       transposed_a(1.0, c.accumulate));
}

}  // namespace

void swiglu_lora_backward(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                          const Tensor& xa_up, const Tensor& dxa_down, double scale, const SwigluGrads& into,
                          const SwigluLoraGrads& grads, bool accumulate, const Tensor& h) {
  constexpr std::string_view op = "swiglu_lora_backward";
  const std::initializer_list<NamedTensor> activations = {{"gate", &gate},
                                                          {"up", &up},
                                                          {"dh", &dh},
                                                          {"xa_gate", &xa_gate},
                                                          {"xa_up", &xa_up},
                                                          {"dxa_down", &dxa_down},
                                                          {"into.dgate", &into.dgate},
                                                          {"into.dup", &into.dup}};
  const std::initializer_list<NamedTensor> gradients = {
      {"db_gate", &grads.db_gate}, {"db_up", &grads.db_up}, {"da_down", &grads.da_down}};
  for (const auto& [name, t] : activations) check_floating(op, name, *t);
  for (const auto& [name, t] : gradients) check_floating(op, name, *t);
  check_rank(op, "gate", gate, 2);
  check_rank(op, "xa_gate", xa_gate, 2);
  const int64_t rows = gate.size(0), cols = gate.size(1), rank = xa_gate.size(1);
  for (const auto& [name, t] : {NamedTensor{"up", &up}, NamedTensor{"dh", &dh},
                                NamedTensor{"into.dgate", &into.dgate}, NamedTensor{"into.dup", &into.dup}})
    check_shape(op, name, *t, {rows, cols});
  if (h.defined()) check_shape(op, "h", h, {rows, cols});
  check_shape(op, "xa_up", xa_up, {rows, rank});
  check_shape(op, "dxa_down", dxa_down, {rows, rank});
  check_shape(op, "db_gate", grads.db_gate, {cols, rank});
  check_shape(op, "db_up", grads.db_up, {cols, rank});
  check_shape(op, "da_down", grads.da_down, {rank, cols});
  check_same_dtype(op, activations);
  check_same_dtype(op, {{"gate", &gate}, {"h", &h}});
  check_same_dtype(op, gradients);
  const DType grad_dtype = gate.dtype() == DType::f64 ? DType::f64 : DType::f32;
  if (grads.db_gate.dtype() != grad_dtype)
    fail(op, "the gradients must be {} for {} activations, got {}", dtype_name(grad_dtype),
         dtype_name(gate.dtype()), grads.db_gate.str());
  check_same_device(op, activations);
  check_same_device(op, {{"gate", &gate},
                         {"h", &h},
                         {"db_gate", &grads.db_gate},
                         {"db_up", &grads.db_up},
                         {"da_down", &grads.da_down}});
  static const std::vector<Implementation<SwigluLoraCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors in 16-bit rows of 16-byte vectors, rank 16, 32 or 64, f32 contiguous gradients",
       [](const SwigluLoraCall& c) {
         return on_cuda({&c.gate}) && cuda::swiglu_lora_backward_fits(
                                          c.gate, c.up, c.dh, c.xa_gate, c.xa_up, c.dxa_down, c.into.dgate,
                                          c.into.dup, c.grads.db_gate, c.grads.db_up, c.grads.da_down);
       },
       [](const SwigluLoraCall& c) {
         cuda::swiglu_lora_backward(c.gate, c.up, c.dh, c.xa_gate, c.xa_up, c.dxa_down, c.scale, c.into.dgate,
                                    c.into.dup, c.grads.db_gate, c.grads.db_up, c.grads.da_down,
                                    c.accumulate);
       }},
#endif
      {"composed", "tensors on one device", [](const SwigluLoraCall&) { return true; }, composed},
  };
  dispatch(op, table,
           SwigluLoraCall{gate, up, dh, xa_gate, xa_up, dxa_down, scale, into, grads, accumulate, h},
           describe({{"gate", &gate}, {"xa_gate", &xa_gate}}));
}

bool swiglu_lora_backward_in_one_pass(const Tensor& gate, int64_t rank) {
#ifdef WICK_WITH_CUDA
  return gate.defined() && gate.device().is_cuda() && cuda::swiglu_lora_backward_takes(gate, rank);
#else
  (void)gate;
  (void)rank;
  return false;
#endif
}

}  // namespace wick::ops
