// CUDA kernels, the counterparts of backend/cpu/kernels.h. Front-ends have validated arguments and allocated
// the outputs on the inputs' device; every launch goes on that device's current stream and nothing here waits
// for the device, except where a host value is needed to validate (noted per function).
#pragma once

#include "backend/kernel_kinds.h"
#include "wick/ops.h"
#include "wick/tensor.h"

namespace wick::cuda {

void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);
// Whether the `bytes` bytes at a and b (device memory, 16-byte aligned) are equal. Waits for the device.
bool same_bytes(const void* a, const void* b, size_t bytes, Device device);

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options);
// The decode-shape product (gemv.cu): A [M <= 4, K] · B [N, K]ᵀ, dense, one float dtype, no batch.
bool gemv_applies(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options);
void gemv(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options);

// Last-axis softmax kernels (the front-end moves other axes last): `row_cache` holds each row in registers
// (row_cache.cuh), `vector` makes two 16-byte-vector passes over unmasked rows, `plain` handles everything.
enum class SoftmaxKernel { row_cache, vector, plain };
bool softmax_applies(SoftmaxKernel kernel, const Tensor& x, const ops::SoftmaxMask& mask);
void softmax(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log, SoftmaxKernel kernel);
void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log);

// `row_cache` selects the register-cached kernel (row_cache.cuh); rms_norm_row_cache_applies says where.
bool rms_norm_row_cache_applies(const Tensor& x, const Tensor& y);
void rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& y, bool row_cache);
void rms_norm_residual(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                       const Tensor& y, const Tensor& sum, bool row_cache);
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
// ops::swiglu_lora_backward in one pass over the [rows, cols] tensors (swiglu_lora_backward.cu), for the
// layouts swiglu_lora_backward_fits accepts: 16-bit rows of whole 16-byte vectors, rank 16, 32 or 64, f32
// contiguous gradients. swiglu_lora_backward_takes: the part of that known from `gate` and the rank alone.
bool swiglu_lora_backward_takes(const Tensor& gate, int64_t rank);
bool swiglu_lora_backward_fits(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                               const Tensor& xa_up, const Tensor& dxa_down, const Tensor& dgate,
                               const Tensor& dup, const Tensor& db_gate, const Tensor& db_up,
                               const Tensor& da_down);
void swiglu_lora_backward(const Tensor& gate, const Tensor& up, const Tensor& dh, const Tensor& xa_gate,
                          const Tensor& xa_up, const Tensor& dxa_down, double scale, const Tensor& dgate,
                          const Tensor& dup, const Tensor& db_gate, const Tensor& db_up,
                          const Tensor& da_down, bool accumulate);

using backend::Binary;
void binary(Binary kind, const Tensor& a, const Tensor& b, const Tensor& out);
void scale(const Tensor& x, double factor, const Tensor& y);
void sum_to_shape(const Tensor& x, const Tensor& out);

// Ids are validated on the host before launch (one small device-to-host read of the ids).
void embedding(const Tensor& weight, const Tensor& ids, const Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dy, const Tensor& dweight);

void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& loss);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                            const Tensor& dlogits);

// Reference attention composed from gemm and softmax (materializes the scores).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
               const Tensor& out, const Tensor& lse);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

// Flash attention on the tensor cores (flash_attention*.cu): bf16/f16, head_dim 64 or 128 (and 32 for the
// prefill forward), rows of the last axis contiguous and 16-byte aligned (other strides free), f32
// accumulation, the scores never stored.
// `prefill` tiles the packed query rows; `decode` (few query rows per key/value head) also splits the keys
// across blocks and combines the splits by their log-sum-exp.
enum class FlashKind { prefill, decode };
bool flash_attention_applies(FlashKind kind, const Tensor& q, const Tensor& k, const Tensor& v);
// For measurements, WICK_FLASH_TILE (forward: w1, w4, w8, w4m2, w4m2n32, wgmma, wgmma2) and
// WICK_FLASH_BWD_TILE (backward: k4q4, k8q4, k4q8, k8q8) override the built-in tile choice.
void flash_attention(FlashKind kind, const Tensor& q, const Tensor& k, const Tensor& v,
                     const ops::AttentionOptions& options, const Tensor& out, const Tensor& lse);
// Also needs out, dout (and the f32 lse) in q's dtype and layout rules.
bool flash_attention_backward_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                      const Tensor& lse, const Tensor& dout);
// Deterministic: dK/dV per key block, dQ in a separate pass per query block (no atomics).
void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                              const Tensor& dq, const Tensor& dk, const Tensor& dv);
// Same dtype and device as `like`, rows laid out as flash_attention_applies needs.
bool flash_layout_supported(const Tensor& t, const Tensor& like);

// Loss and gradient from one kernel: each row's log-sum-exp, then its gradient, in the same block.
void cross_entropy_with_grad(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                             const Tensor& loss, const Tensor& dlogits);

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

}  // namespace wick::cuda
