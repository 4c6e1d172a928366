// CPU kernels. Callers (the op front-ends) have validated shapes, dtypes and devices and allocated the
// outputs; kernels compute in f32 (f32/f16/bf16 data) or f64 (f64 data) and write every output element.
#pragma once

#include "backend/kernel_kinds.h"
#include "wick/ops.h"
#include "wick/tensor.h"

namespace wick::cpu {

void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options);

void softmax(const Tensor& x, const Tensor& y, int64_t axis, const ops::SoftmaxMask& mask, bool log);
void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, int64_t axis, bool log);

void rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& y);
void rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, const Tensor& residual_grad,
                       double eps, const Tensor& dx, const Tensor& dweight);
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y);
void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                         const Tensor& dx, const Tensor& dweight, const Tensor& dbias);

void rope(const Tensor& x, const ops::RopeOptions& options, bool inverse, const Tensor& y);

using backend::Unary;
void unary(Unary kind, const Tensor& x, const Tensor& y);
void unary_backward(Unary kind, const Tensor& x, const Tensor& dy, const Tensor& dx);
void swiglu(const Tensor& gate, const Tensor& up, const Tensor& y);
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, const Tensor& dgate,
                     const Tensor& dup);

using backend::Binary;
void binary(Binary kind, const Tensor& a, const Tensor& b, const Tensor& out);
void scale(const Tensor& x, double factor, const Tensor& y);
void sum_to_shape(const Tensor& x, const Tensor& out);

void embedding(const Tensor& weight, const Tensor& ids, const Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dy, const Tensor& dweight);

void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& loss);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                            const Tensor& dlogits);

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
               const Tensor& out, const Tensor& lse);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

void argmax(const Tensor& x, const Tensor& indices);
void top_k_filter(const Tensor& logits, int64_t k, const Tensor& out);
void top_p_filter(const Tensor& logits, double top_p, const Tensor& out);
void sample_multinomial(const Tensor& logits, uint64_t seed, uint64_t draw, const Tensor& out);
void min_p_filter(const Tensor& logits, double min_p, const Tensor& out);
void apply_penalties(const Tensor& logits, const Tensor& counts, double repetition, double frequency,
                     double presence, const Tensor& out);
void topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices);

// Training primitives (optim): AdamW in place on dense f32/f64 buffers, Σ x² into a scalar f64, dropout.
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const ops::AdamWOptions& options);
void sum_of_squares(const Tensor& x, const Tensor& out);
void dropout(const Tensor& x, double p, uint64_t seed, uint64_t draw, const Tensor& out);

// Decode positions held on the device (cache_update): a row's key/value written at positions[b]; t += step.
void write_at_positions(const Tensor& cache, const Tensor& values, const Tensor& positions);
void increment(const Tensor& t, int64_t step);

}  // namespace wick::cpu
