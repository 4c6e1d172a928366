// The LoRA linear layer: y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ (+ bias), with W frozen.
#pragma once

#include "wick/ops/activation.h"
#include "wick/tensor.h"

namespace wick::ops {

struct LoraLinearResult {
  Tensor y;   // [..., out]
  Tensor xa;  // x·Aᵀ [..., r], kept for the backward
};

// x: [..., in]; w: [out, in]; a: [r, in]; b: [out, r]; bias: optional [out]. x, w, a, b (and bias) share one
// float dtype and device. The LoRA term is accumulated into y by the GEMM epilogue (beta = 1), so no
// elementwise pass runs over y. When w and a are the views of pack_lora_weights, x·[W; A]ᵀ is one GEMM and
// the whole layer two; y and xa are then column views of one [..., out + r] buffer.
LoraLinearResult lora_linear(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b, double scale,
                             const Tensor& bias = Tensor());

// W and A stored as one [out + r, in] matrix (W's rows first), so that lora_linear computes x·Wᵀ and x·Aᵀ
// with one GEMM: the views `w` and `a` share `storage`'s memory, and lora_linear takes the packed path when
// given them. Copies the values of `w` and `a`.
struct PackedLoraWeights {
  Tensor storage;  // [out + r, in]
  Tensor w;        // rows [0, out)
  Tensor a;        // rows [out, out + r)
};
PackedLoraWeights pack_lora_weights(const Tensor& w, const Tensor& a);

struct LoraLinearGrads {
  Tensor dx;  // [..., in], x's dtype; undefined unless asked for
  Tensor da;  // [r, in], f32 (f64 for f64 inputs)
  Tensor db;  // [out, r], f32 (f64 for f64 inputs)
};
// Gradients for A, B and (optionally) x; none for the frozen W.
LoraLinearGrads lora_linear_backward(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                                     double scale, const Tensor& xa, const Tensor& dy,
                                     bool compute_dx = true);

// The middle of a LoRA-adapted SwiGLU MLP's backward, h = swiglu(gate, up) feeding the down projection:
// SwiGLU's gradients dgate, dup = swiglu_backward(gate, up, dh) into `into`, and the three LoRA weight
// gradients that read those tensors,
//   db_gate = scale·dgateᵀ·xa_gate,  db_up = scale·dupᵀ·xa_up,  da_down = dxa_downᵀ·h
// (added to what they hold with `accumulate`). gate, up, dh, into: [N, I]; xa_gate, xa_up, dxa_down: [N, r]
// (rows may be strided); db_gate, db_up: [I, r] and da_down: [r, I] in f32 (f64 for f64 inputs). On CUDA
// one kernel reads gate, up and dh once and forms h again instead of reading it; elsewhere, and for layouts
// that kernel does not take, the same from swiglu_backward and three GEMMs, reading `h` where the caller kept
// the forward's (else forming it again).
struct SwigluLoraGrads {
  Tensor db_gate;
  Tensor db_up;
  Tensor da_down;
};
void swiglu_lora_backward(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                          const Tensor& xa_up, const Tensor& dxa_down, double scale, const SwigluGrads& into,
                          const SwigluLoraGrads& grads, bool accumulate, const Tensor& h = Tensor());
// Whether swiglu_lora_backward can take its one-pass kernel for a `gate` laid out as this one (the forward's)
// at rank r, so that keeping h for it would be wasted memory.
bool swiglu_lora_backward_in_one_pass(const Tensor& gate, int64_t rank);

}  // namespace wick::ops
