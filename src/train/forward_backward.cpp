// Forward and backward through the decoder blocks for LoRA training. Per block, with x = rms_norm(h):
//   q, k, v = rope(P_q(x)), rope(P_k(x)), P_v(x);  a = attention(q, k, v);  s = h + P_o(a)
//   y = rms_norm(s);  h' = s + P_down(swiglu(P_gate(y), P_up(y)))
// where P is a frozen linear layer plus, where the adapter targets it, its LoRA term. The backward runs the
// same steps in reverse; only the LoRA matrices receive gradients (two thin GEMMs each), the frozen weights
// only pass gradients through (dx = dy·W).
#include "wick/train/forward_backward.h"

#include <optional>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::train {
namespace {

using lora::Projection;

ops::GemmOptions gemm_options(bool ta, bool tb, double alpha = 1.0, double beta = 0.0) {
  ops::GemmOptions o;
  o.transpose_a = ta;
  o.transpose_b = tb;
  o.alpha = alpha;
  o.beta = beta;
  return o;
}

struct Context {
  const models::Decoder& model;
  const lora::LoraAdapter* adapter;
  lora::LoraAdapter* grads;
  const ForwardBackwardOptions& options;
  bool training;  // dropout on
  int64_t batch, seq;
};

// What a projection's backward needs.
struct ProjectionSaved {
  Tensor x;       // [N, in]
  Tensor x_lora;  // the LoRA path's input (x after dropout)
  Tensor xa;      // x_lora·Aᵀ [N, r]
};

uint64_t dropout_draw(const Context& c, int64_t layer, Projection p) {
  return c.options.dropout_draw_base + static_cast<uint64_t>(layer) * 7 + static_cast<uint64_t>(p);
}

double dropout_p(const Context& c) {
  return c.training && c.adapter ? c.adapter->config().dropout : 0.0;
}

Tensor project(const Context& c, int64_t layer, Projection p, const Tensor& x, ProjectionSaved* saved) {
  const auto [w, bias] = c.model.projection(layer, p);
  const lora::LoraPair* pair = c.adapter ? c.adapter->find(layer, p) : nullptr;
  if (saved) saved->x = x;
  if (!pair) return ops::linear(x, w, bias);
  const double scale = c.adapter->config().scale(), p_drop = dropout_p(c);
  if (p_drop == 0) {
    auto r = ops::lora_linear(x, w, pair->a, pair->b, scale, bias);
    if (saved) saved->x_lora = x, saved->xa = r.xa;
    return r.y;
  }
  const Tensor xd = ops::dropout(x, p_drop, c.options.dropout_seed, dropout_draw(c, layer, p));
  const Tensor xa = ops::matmul(xd, pair->a, false, true);
  // The LoRA term first, then the frozen product adds itself to it (see ops::lora_linear).
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
  ops::gemm(xa, pair->b, y, gemm_options(false, true, scale));
  ops::GemmOptions frozen = gemm_options(false, true, 1.0, 1.0);
  frozen.bias = bias;
  ops::gemm(x, w, y, frozen);
  if (saved) saved->x_lora = xd, saved->xa = xa;
  return y;
}

// Projections that share their input x and are stored as row blocks of one frozen matrix (q/k/v, gate/up),
// each with a LoRA pair of one rank: one GEMM computes them all, with the LoRA terms folded into its inner
// dimension,
//   [y_1 | … | y_n] = [x | xa_1 | … | xa_n] · [[W_1 | s·B_1 | 0 …]; …; [W_n | 0 … | s·B_n]]ᵀ,
// so no pass writes a LoRA term and rereads it. xa_j = x_lora_j·A_jᵀ are written into the widened input;
// the backward reads x and xa_j as views of it. The packed weight holds s·B rounded once to the model's
// dtype.
bool groups(const Context& c, int64_t layer, std::initializer_list<Projection> group) {
  if (!c.adapter) return false;
  const int64_t rank = c.adapter->config().rank;
  for (Projection p : group) {
    const lora::LoraPair* pair = c.adapter->find(layer, p);
    if (!pair || pair->a.size(0) != rank) return false;
  }
  // Rows of the widened input stay 16-byte aligned.
  return (rank * static_cast<int64_t>(group.size())) % 8 == 0;
}

// [W | 0]: the frozen matrix with `extra` zero columns, from the cache when there is one.
Tensor widened(const Context& c, const Tensor& frozen, int64_t extra) {
  const auto build = [&] {
    const Tensor w = Tensor::zeros({frozen.size(0), frozen.size(1) + extra}, frozen.dtype(), frozen.device());
    w.narrow(1, 0, frozen.size(1)).copy_(frozen);
    return w;
  };
  if (!c.options.packed_weights) return build();
  auto& entries = c.options.packed_weights->entries;
  auto found = entries.find(frozen.data_ptr());
  if (found == entries.end() || found->second.widened.size(1) != frozen.size(1) + extra)
    found = entries.insert_or_assign(frozen.data_ptr(), PackedWeights::Entry{frozen, build()}).first;
  return found->second.widened;
}

// The group's packed weight [[W_1 | s·B_1 | 0 …]; …]. The forward writes the s·B_j blocks; the backward reads
// the matrix the forward left in the cache, or writes them again where there is no cache.
Tensor group_weight(const Context& c, int64_t layer, std::initializer_list<Projection> group,
                    const Tensor& packed_w, bool write_lora) {
  const int64_t rank = c.adapter->config().rank;
  const Tensor weight = widened(c, packed_w, rank * static_cast<int64_t>(group.size()));
  if (!write_lora) return weight;
  int64_t row = 0, column = packed_w.size(1);
  for (Projection p : group) {
    const Tensor& b = c.adapter->find(layer, p)->b;
    weight.narrow(0, row, b.size(0))
        .narrow(1, column, rank)
        .copy_(ops::scale(b, c.adapter->config().scale()));
    row += b.size(0), column += rank;
  }
  return weight;
}

// `input` is group_input()'s buffer with x in its left columns.
std::vector<Tensor> project_group(const Context& c, int64_t layer, std::initializer_list<Projection> group,
                                  const Tensor& input, const Tensor& packed_w, const Tensor& packed_bias,
                                  std::initializer_list<ProjectionSaved*> saved) {
  const int64_t rows = input.size(0), in = packed_w.size(1), rank = c.adapter->config().rank;
  const double p_drop = dropout_p(c);
  const Tensor weight = group_weight(c, layer, group, packed_w, true);
  const Tensor x_view = input.narrow(1, 0, in);
  const Tensor y = Tensor::empty({rows, packed_w.size(0)}, input.dtype(), input.device());
  std::vector<Tensor> outputs;
  int64_t row = 0, column = in;
  auto saved_it = saved.begin();
  for (Projection p : group) {
    const lora::LoraPair* pair = c.adapter->find(layer, p);
    const int64_t out = pair->b.size(0);
    const Tensor x_lora =
        p_drop == 0 ? x_view
                    : ops::dropout(x_view, p_drop, c.options.dropout_seed, dropout_draw(c, layer, p));
    const Tensor xa = input.narrow(1, column, rank);
    ops::gemm(x_lora, pair->a, xa, gemm_options(false, true));
    if (ProjectionSaved* s = *saved_it++) s->x = x_view, s->x_lora = x_lora, s->xa = xa;
    outputs.push_back(y.narrow(1, row, out));
    row += out, column += rank;
  }
  ops::GemmOptions options = gemm_options(false, true);
  options.bias = packed_bias;
  ops::gemm(input, weight, y, options);
  return outputs;
}

// The buffer for the input x ([rows, in]) of the projections of `group`: [x | xa_1 | … | xa_n] where they
// run as one packed product, so the norm before them writes x straight into its left columns; else x alone.
Tensor group_input(const Context& c, int64_t layer, std::initializer_list<Projection> group,
                   const Tensor& like, int64_t in) {
  const int64_t lora =
      groups(c, layer, group) ? c.adapter->config().rank * static_cast<int64_t>(group.size()) : 0;
  return Tensor::empty({like.size(0), in + lora}, like.dtype(), like.device());
}

// The projections of `group` of x, given in group_input()'s buffer `input`: one packed product where groups()
// allows it, else one at a time.
std::vector<Tensor> project_shared(const Context& c, int64_t layer, std::initializer_list<Projection> group,
                                   const Tensor& input, const Tensor& packed_w, const Tensor& packed_bias,
                                   std::initializer_list<ProjectionSaved*> saved) {
  if (groups(c, layer, group)) return project_group(c, layer, group, input, packed_w, packed_bias, saved);
  const Tensor& x = input;
  std::vector<Tensor> outputs;
  auto saved_it = saved.begin();
  for (Projection p : group) outputs.push_back(project(c, layer, p, x, *saved_it++));
  return outputs;
}

// db = scale·dyᵀ·xa of projection p, into c.grads.
void lora_b_backward(const Context& c, int64_t layer, Projection p, const ProjectionSaved& s,
                     const Tensor& dy) {
  ops::gemm(dy, s.xa, c.grads->find(layer, p)->b,
            gemm_options(true, false, c.adapter->config().scale(), c.options.accumulate ? 1.0 : 0.0));
}

// The gradients through the LoRA output side of projection p: db into c.grads, and dxa = scale·dy·B into
// `dxa`.
void lora_output_backward(const Context& c, int64_t layer, Projection p, const ProjectionSaved& s,
                          const Tensor& dy, const Tensor& dxa) {
  lora_b_backward(c, layer, p, s, dy);
  ops::gemm(dy, c.adapter->find(layer, p)->b, dxa, gemm_options(false, false, c.adapter->config().scale()));
}

// Returns dx (added into `into` by the GEMM itself when given, saving a pass); adds the LoRA gradients into
// c.grads. With `deferred_da`, da is left to the caller, which gets dxa there.
Tensor project_backward(const Context& c, int64_t layer, Projection p, const ProjectionSaved& s,
                        const Tensor& dy, const Tensor& into = Tensor(), Tensor* deferred_da = nullptr) {
  const Tensor w = c.model.projection(layer, p).first;
  const lora::LoraPair* pair = c.adapter ? c.adapter->find(layer, p) : nullptr;
  const auto frozen_into = [&](const Tensor& out) {
    ops::gemm(dy, w, out, gemm_options(false, false, 1.0, 1.0));
    return out;
  };
  if (!pair) return into.defined() ? frozen_into(into) : ops::matmul(dy, w);
  // da = dxaᵀ·x_lora; dx = dxa·A (through the dropout mask) + dy·W.
  const Tensor dxa = Tensor::empty(s.xa.shape(), dy.dtype(), dy.device());
  lora_output_backward(c, layer, p, s, dy, dxa);
  if (deferred_da)
    *deferred_da = dxa;
  else
    ops::gemm(dxa, s.x_lora, c.grads->find(layer, p)->a,
              gemm_options(true, false, 1.0, c.options.accumulate ? 1.0 : 0.0));
  const double p_drop = dropout_p(c);
  if (p_drop != 0) {
    const Tensor lora_dx =
        ops::dropout(ops::matmul(dxa, pair->a), p_drop, c.options.dropout_seed, dropout_draw(c, layer, p));
    return frozen_into(into.defined() ? ops::add(into, lora_dx) : lora_dx);
  }
  // The thin term first: written once (or added to `into`), then the frozen product adds itself to it.
  if (into.defined()) {
    ops::gemm(dxa, pair->a, into, gemm_options(false, false, 1.0, 1.0));
    return frozen_into(into);
  }
  const Tensor dx = Tensor::empty({dy.size(0), w.size(1)}, dy.dtype(), dy.device());
  ops::gemm(dxa, pair->a, dx, gemm_options(false, false));
  return frozen_into(dx);
}

// The input gradient of projections that share their input (q/k/v, gate/up), adding their LoRA gradients.
// Where the forward packed them and dropout is off, their dxa_j = scale·dy_j·B_j sit side by side, so every
// da_j comes from one GEMM (dxaᵀ·x) and every LoRA term of dx from one (dxa·[A_1; …; A_n]); otherwise one
// projection at a time. When the dy_j are the column blocks of one matrix `packed_dy` = [dy_1 | … | dy_n],
// one product with the forward's packed weight gives dy·[W | s·B blocks] = [dx | dxa_1 | … | dxa_n], so dy
// is read once for both (the returned dx is then a view with a wider row stride); `db_done` says the caller
// has formed the db_j already (see mlp_fuses_lora).
Tensor project_shared_backward(const Context& c, int64_t layer, std::initializer_list<Projection> group,
                               std::initializer_list<const ProjectionSaved*> saved,
                               std::initializer_list<Tensor> dys, const Tensor& packed_w = Tensor(),
                               const Tensor& packed_dy = Tensor(), bool db_done = false) {
  const ProjectionSaved& first = **saved.begin();
  bool packed = groups(c, layer, group) && dropout_p(c) == 0;
  for (const ProjectionSaved* s : saved) packed = packed && s->x.data_ptr() == first.x.data_ptr();
  auto saved_it = saved.begin();
  auto dy_it = dys.begin();
  if (db_done && !(packed && packed_dy.defined()))
    fail("train", "layer {}: the LoRA db of a group were formed apart from an unpacked backward", layer);
  if (!packed) {
    Tensor dx;
    for (Projection p : group) dx = project_backward(c, layer, p, **saved_it++, *dy_it++, dx);
    return dx;
  }
  const int64_t rows = first.x.size(0), in = first.x.size(1), rank = c.adapter->config().rank;
  const int64_t width = rank * static_cast<int64_t>(group.size());
  const DType dtype = first.x.dtype();
  const Device device = first.x.device();
  const bool one_product = packed_dy.defined();
  Tensor dx, dxa;
  if (one_product) {
    const Tensor weight = group_weight(c, layer, group, packed_w, c.options.packed_weights == nullptr);
    const Tensor wide = Tensor::empty({rows, in + width}, dtype, device);
    ops::gemm(packed_dy, weight, wide, gemm_options(false, false));
    dx = wide.narrow(1, 0, in);
    dxa = wide.narrow(1, in, width);
    if (!db_done)
      for (Projection p : group) lora_b_backward(c, layer, p, **saved_it++, *dy_it++);
  } else {
    dx = Tensor::empty({rows, in}, dtype, device);
    dxa = Tensor::empty({rows, width}, dtype, device);
    int64_t offset = 0;
    for (Projection p : group) {
      lora_output_backward(c, layer, p, **saved_it++, *dy_it++, dxa.narrow(1, offset, rank));
      offset += rank;
    }
  }
  const Tensor a = Tensor::empty({width, in}, dtype, device);
  int64_t offset = 0;
  for (Projection p : group) {
    a.narrow(0, offset, rank).copy_(c.adapter->find(layer, p)->a);
    offset += rank;
  }
  const Tensor da = Tensor::empty({width, in}, c.grads->dtype(), device);
  ops::gemm(dxa, first.x, da, gemm_options(true, false));
  // The LoRA terms of dx: added to the one product's dx, or written first for the frozen products to add to.
  ops::gemm(dxa, a, dx, gemm_options(false, false, 1.0, one_product ? 1.0 : 0.0));
  offset = 0;
  dy_it = dys.begin();
  for (Projection p : group) {
    const Tensor& grad_a = c.grads->find(layer, p)->a;
    const Tensor part = da.narrow(0, offset, rank);
    grad_a.copy_(c.options.accumulate ? ops::add(grad_a, part) : part);
    if (!one_product)
      ops::gemm(*dy_it, c.model.projection(layer, p).first, dx, gemm_options(false, false, 1.0, 1.0));
    ++dy_it;
    offset += rank;
  }
  return dx;
}

// Whether the MLP's backward takes ops::swiglu_lora_backward: gate, up and down adapted with one rank,
// gate/up packed (so their db come apart from their dxa), no dropout (down's LoRA input is then h itself,
// which the one-pass kernel forms again: where it will run, the forward does not keep h).
bool mlp_fuses_lora(const Context& c, int64_t layer) {
  if (!groups(c, layer, {Projection::gate, Projection::up}) || dropout_p(c) != 0) return false;
  const lora::LoraPair* down = c.adapter->find(layer, Projection::down);
  return down && down->a.size(0) == c.adapter->config().rank;
}

// A block's activations, rows flattened to [N = batch·seq, features].
struct BlockSaved {
  Tensor h;  // the block's input
  ProjectionSaved q, k, v, o, gate, up, down;
  Tensor q_rot, k_rot, v_heads;  // [batch, heads, seq, dim] (views)
  Tensor attention_out, lse;
  Tensor sum;  // h + o-projection
  Tensor gate_out, up_out;
};

// Causal, and the same shapes every step (so attention may take an implementation with a per-shape setup).
ops::AttentionOptions attention_options() {
  ops::AttentionOptions attention;
  attention.causal = true;
  attention.repeated_shape = true;
  return attention;
}

ops::RopeOptions rope_options(const models::ModelConfig& config) {
  ops::RopeOptions rope;
  rope.theta = config.rope_theta;
  return rope;
}

Tensor block_forward(const Context& c, int64_t i, const Tensor& h, BlockSaved* s) {
  const models::ModelConfig& cfg = c.model.config();
  const models::DecoderLayerWeights& l = c.model.layer(i);
  const int64_t b = c.batch, t = c.seq, heads = cfg.num_attention_heads, kv_heads = cfg.num_key_value_heads,
                dim = cfg.head_dim;
  const ops::RopeOptions rope = rope_options(cfg);
  const Tensor qkv_input =
      group_input(c, i, {Projection::q, Projection::k, Projection::v}, h, cfg.hidden_size);
  ops::rms_norm(h, l.input_norm, cfg.rms_norm_eps, qkv_input.narrow(1, 0, cfg.hidden_size));
  const std::vector<Tensor> qkv =
      project_shared(c, i, {Projection::q, Projection::k, Projection::v}, qkv_input, l.qkv, l.qkv_bias,
                     {s ? &s->q : nullptr, s ? &s->k : nullptr, s ? &s->v : nullptr});
  const Tensor q = ops::rope(qkv[0].view({b, t, heads, dim}), rope).transpose(1, 2);
  const Tensor k = ops::rope(qkv[1].view({b, t, kv_heads, dim}), rope).transpose(1, 2);
  const Tensor v = qkv[2].view({b, t, kv_heads, dim}).transpose(1, 2);
  const auto att = ops::attention(q, k, v, attention_options());
  const Tensor attended = att.out.transpose(1, 2).reshape({b * t, heads * dim});
  const Tensor gate_up_input = group_input(c, i, {Projection::gate, Projection::up}, h, cfg.hidden_size);
  const auto mid = ops::rms_norm_residual(project(c, i, Projection::o, attended, s ? &s->o : nullptr), h,
                                          l.post_attention_norm, cfg.rms_norm_eps,
                                          gate_up_input.narrow(1, 0, cfg.hidden_size));
  const std::vector<Tensor> gate_up =
      project_shared(c, i, {Projection::gate, Projection::up}, gate_up_input, l.gate_up, l.gate_up_bias,
                     {s ? &s->gate : nullptr, s ? &s->up : nullptr});
  const Tensor& gate = gate_up[0];
  const Tensor& up = gate_up[1];
  const Tensor down = project(c, i, Projection::down, ops::swiglu(gate, up), s ? &s->down : nullptr);
  if (s) {
    s->h = h;
    s->q_rot = q, s->k_rot = k, s->v_heads = v;
    s->attention_out = att.out, s->lse = att.lse;
    s->sum = mid.sum;
    s->gate_out = gate, s->up_out = up;
    if (mlp_fuses_lora(c, i) && ops::swiglu_lora_backward_in_one_pass(gate, c.adapter->config().rank))
      s->down.x = s->down.x_lora = Tensor();
  }
  return ops::add(mid.sum, down);
}

// Returns the gradient of the block's input.
Tensor block_backward(const Context& c, int64_t i, const BlockSaved& s, const Tensor& dout) {
  const models::ModelConfig& cfg = c.model.config();
  const models::DecoderLayerWeights& l = c.model.layer(i);
  const int64_t b = c.batch, t = c.seq, heads = cfg.num_attention_heads, kv_heads = cfg.num_key_value_heads,
                dim = cfg.head_dim;
  const ops::RopeOptions rope = rope_options(cfg);
  const bool fused_mlp = mlp_fuses_lora(c, i);
  Tensor dxa_down;
  const Tensor dswiglu =
      project_backward(c, i, Projection::down, s.down, dout, Tensor(), fused_mlp ? &dxa_down : nullptr);
  const int64_t inter = cfg.intermediate_size;
  const Tensor dgate_up = Tensor::empty({b * t, 2 * inter}, dout.dtype(), dout.device());
  const ops::SwigluGrads dmlp{dgate_up.narrow(1, 0, inter), dgate_up.narrow(1, inter, inter)};
  if (fused_mlp) {
    lora::LoraAdapter& g = *c.grads;
    ops::swiglu_lora_backward(
        s.gate_out, s.up_out, dswiglu, s.gate.xa, s.up.xa, dxa_down, c.adapter->config().scale(), dmlp,
        {g.find(i, Projection::gate)->b, g.find(i, Projection::up)->b, g.find(i, Projection::down)->a},
        c.options.accumulate, s.down.x_lora);
  } else {
    ops::swiglu_backward(s.gate_out, s.up_out, dswiglu, dmlp);
  }
  const Tensor dy = project_shared_backward(c, i, {Projection::gate, Projection::up}, {&s.gate, &s.up},
                                            {dmlp.dgate, dmlp.dup}, l.gate_up, dgate_up, fused_mlp);
  const Tensor dsum =
      ops::rms_norm_backward(s.sum, l.post_attention_norm, dy, cfg.rms_norm_eps, false, dout).dx;
  const Tensor dattended = project_backward(c, i, Projection::o, s.o, dsum);
  const auto datt =
      ops::attention_backward(s.q_rot, s.k_rot, s.v_heads, s.attention_out, s.lse,
                              dattended.view({b, t, heads, dim}).transpose(1, 2), attention_options());
  // dq, dk and dv side by side, as the q/k/v product's output is laid out.
  const Tensor dqkv = Tensor::empty({b, t, heads + 2 * kv_heads, dim}, dout.dtype(), dout.device());
  ops::rope_backward(datt.dq.transpose(1, 2), rope, dqkv.narrow(2, 0, heads));
  ops::rope_backward(datt.dk.transpose(1, 2), rope, dqkv.narrow(2, heads, kv_heads));
  dqkv.narrow(2, heads + kv_heads, kv_heads).copy_(datt.dv.transpose(1, 2));
  const Tensor dy_qkv = dqkv.view({b * t, (heads + 2 * kv_heads) * dim});
  const Tensor dx = project_shared_backward(
      c, i, {Projection::q, Projection::k, Projection::v}, {&s.q, &s.k, &s.v},
      {dy_qkv.narrow(1, 0, heads * dim), dy_qkv.narrow(1, heads * dim, kv_heads * dim),
       dy_qkv.narrow(1, (heads + kv_heads) * dim, kv_heads * dim)},
      l.qkv, dy_qkv);
  return ops::rms_norm_backward(s.h, l.input_norm, dx, cfg.rms_norm_eps, false, dsum).dx;
}

void check_batch(const models::Decoder& model, const Batch& batch) {
  if (!batch.ids.defined() || batch.ids.dim() != 2)
    fail("train", "batch ids must be [batch, seq], got {}",
         batch.ids.defined() ? batch.ids.str() : "nothing");
  if (!batch.targets.defined() || batch.targets.shape() != batch.ids.shape())
    fail("train", "batch targets must have the ids' shape {}", shape_str(batch.ids.shape()));
  if (batch.ids.size(1) > model.config().max_position_embeddings)
    fail("train", "sequences of {} tokens exceed the model's context of {}", batch.ids.size(1),
         model.config().max_position_embeddings);
  if (batch.counted <= 0) fail("train", "the batch has no target tokens to learn from");
}

}  // namespace

double forward_backward(const models::Decoder& model, const lora::LoraAdapter& adapter, const Batch& batch,
                        lora::LoraAdapter& grads, const ForwardBackwardOptions& options) {
  check_batch(model, batch);
  model.check_adapter(adapter, model.device(), model.dtype());
  const DType grad_dtype = model.dtype() == DType::f64 ? DType::f64 : DType::f32;
  if (!grads.defined() || grads.flat().shape() != adapter.flat().shape() || grads.dtype() != grad_dtype ||
      grads.device() != model.device())
    fail("train", "the gradient buffer must have the adapter's layout in {} on {}", dtype_name(grad_dtype),
         model.device().str());
  const models::ModelConfig& cfg = model.config();
  Context c{model, &adapter, &grads, options, true, batch.ids.size(0), batch.ids.size(1)};
  const int64_t rows = c.batch * c.seq, layers = cfg.num_hidden_layers;

  Tensor h = ops::embedding(model.embed_tokens(), batch.ids.to(model.device())).view({rows, cfg.hidden_size});
  std::vector<BlockSaved> saved(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) {
    BlockSaved& s = saved[static_cast<size_t>(i)];
    if (options.checkpointing) {
      s.h = h;
      h = block_forward(c, i, h, nullptr);
    } else {
      h = block_forward(c, i, h, &s);
    }
  }
  const Tensor normed = ops::rms_norm(h, model.final_norm(), cfg.rms_norm_eps);
  auto head = ops::linear_cross_entropy(normed, model.lm_head(),
                                        batch.targets.to(model.device()).view({rows}), kIgnoreIndex, true);
  Tensor dnormed = options.loss_weight == 1.0 ? head.dhidden : ops::scale(head.dhidden, options.loss_weight);
  Tensor dh = ops::rms_norm_backward(h, model.final_norm(), dnormed, cfg.rms_norm_eps, false).dx;
  for (int64_t i = layers - 1; i >= 0; --i) {
    BlockSaved& s = saved[static_cast<size_t>(i)];
    if (options.checkpointing) {
      BlockSaved recomputed;
      block_forward(c, i, s.h, &recomputed);
      dh = block_backward(c, i, recomputed, dh);
    } else {
      dh = block_backward(c, i, s, dh);
    }
    s = BlockSaved();  // release the block's activations as soon as they are used
  }
  return head.loss.item();
}

double evaluate_loss(const models::Decoder& model, const lora::LoraAdapter* adapter, const Batch& batch,
                     PackedWeights* packed_weights) {
  check_batch(model, batch);
  if (adapter) model.check_adapter(*adapter, model.device(), model.dtype());
  ForwardBackwardOptions options;
  options.packed_weights = packed_weights;
  const models::ModelConfig& cfg = model.config();
  Context c{model, adapter, nullptr, options, false, batch.ids.size(0), batch.ids.size(1)};
  const int64_t rows = c.batch * c.seq;
  Tensor h = ops::embedding(model.embed_tokens(), batch.ids.to(model.device())).view({rows, cfg.hidden_size});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) h = block_forward(c, i, h, nullptr);
  const Tensor normed = ops::rms_norm(h, model.final_norm(), cfg.rms_norm_eps);
  return ops::linear_cross_entropy(normed, model.lm_head(), batch.targets.to(model.device()).view({rows}),
                                   kIgnoreIndex, false)
      .loss.item();
}

}  // namespace wick::train
