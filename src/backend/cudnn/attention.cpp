#include "backend/cudnn/attention.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cudnn_frontend.h>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/cuda/runtime.h"
#include "wick/error.h"

// The frontend reaches cuDNN through this handle (dynamic loading); library() fills it.
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}

namespace wick::cudnn {
namespace {

namespace fe = cudnn_frontend;

struct Library {
  bool loaded = false;
  std::string reason;
};

const Library& library() {
  static const Library lib = [] {
    Library l;
    // The frontend's own CUDA runtime calls must reach the runtime wick runs on, not another major.
    const std::string cudart = fmt::format("libcudart.so.{}", CUDART_VERSION / 1000);
    setenv("CUDNN_FRONTEND_CUDART_LIB_NAME", cudart.c_str(), 0);
    const char* named = std::getenv("WICK_CUDNN_LIBRARY");
    const std::string file = named != nullptr && *named != '\0' ? named : "libcudnn.so.9";
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      l.reason = fmt::format("cannot load {}: {}", file, why != nullptr ? why : "unknown error");
      return l;
    }
    fe::cudnn_dlhandle = handle;
    try {
      const int64_t version = fe::detail::get_backend_version();
      if (version < 90000) {
        l.reason = fmt::format("{} is cuDNN {}, at least 9.0 is needed", file, version);
        return l;
      }
    } catch (const std::exception& e) {
      l.reason = fmt::format("{} is not a usable cuDNN: {}", file, e.what());
      return l;
    }
    l.loaded = true;
    return l;
  }();
  return lib;
}

constexpr int64_t kQ = 1, kK = 2, kV = 3, kO = 4, kStats = 5, kDO = 6, kDQ = 7, kDK = 8, kDV = 9;

// One built graph and the workspace its plan needs; `graph` is null where cuDNN has no engine for the call.
struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
  std::string error;
};

struct State {
  std::mutex mutex;
  std::unordered_map<int, cudnnHandle_t> handles;
  std::map<std::string, Plan> plans;
};

State& state() {
  static State* s = new State();  // outlives every static destructor that might still run attention
  return *s;
}

cudnnHandle_t handle_for(int device) {
  auto [it, inserted] = state().handles.try_emplace(device, nullptr);
  if (inserted) {
    cuda::DeviceGuard guard(device);
    if (fe::detail::create_handle(&it->second) != CUDNN_STATUS_SUCCESS) {
      state().handles.erase(it);
      raise("attention", fmt::format("cuDNN could not create a handle on cuda:{}", device));
    }
  }
  return it->second;
}

// Whether rows are contiguous and 16-byte aligned with other strides in whole 16-byte steps, as cuDNN's
// attention kernels load them.
bool rows_aligned(const Tensor& t) {
  if (!t.defined() || t.dim() != 4 || t.stride(3) != 1) return false;
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int axis = 0; axis < 3; ++axis)
    if (t.size(axis) > 1 && t.stride(axis) % 8 != 0) return false;
  return true;
}

std::vector<int64_t> dims(const Tensor& t) {
  return {t.size(0), t.size(1), t.size(2), t.size(3)};
}
std::vector<int64_t> strides(const Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

double scale_of(const Tensor& q, const ops::AttentionOptions& options) {
  return std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(q.size(3))) : options.scale;
}

// What cuDNN's masks can say: none, or causal with the diagonal at the last key.
// Per-sequence key lengths are left to the flash kernels: cuDNN's padding mask gives a sequence with no keys
// finite rows (measured), where attention's are zero with an lse of -inf.
bool mask_supported(const Tensor& q, const Tensor& k, const ops::AttentionOptions& options) {
  if (options.kv_lengths.defined()) return false;
  if (!options.causal) return true;
  const int64_t q_len = q.size(2), kv_len = k.size(2);
  const int64_t offset = options.query_offset < 0 ? kv_len - q_len : options.query_offset;
  return q_len <= kv_len && offset == kv_len - q_len;
}

bool inputs_supported(const Tensor& q, const Tensor& k, const Tensor& v,
                      const ops::AttentionOptions& options) {
  if (!library().loaded || !q.device().is_cuda()) return false;
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return false;
  if (q.size(3) != 64 && q.size(3) != 128) return false;
  // Few queries per head are the decode kernels' work (cuDNN has no backward engine for a single one).
  if (q.size(0) == 0 || q.size(1) == 0 || q.size(2) <= 16 || k.size(2) == 0) return false;
  for (const Tensor* t : {&q, &k, &v})
    if (t->dtype() != q.dtype() || t->device() != q.device() || !rows_aligned(*t)) return false;
  if (!mask_supported(q, k, options)) return false;
  // A plan's first use may build kernels and size a workspace: never inside a graph capture.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(cuda::stream_for(q.device().index), &capture) != cudaSuccess ||
      capture != cudaStreamCaptureStatusNone)
    return false;
  return true;
}

fe::DataType_t data_type(DType dtype) {
  return dtype == DType::bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF;
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& graph, const char* name, int64_t uid,
                                                    const Tensor& t) {
  return graph.tensor(
      fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dims(t)).set_stride(strides(t)));
}

template <typename Attributes>
void set_mask(Attributes& attributes, const Tensor& q, const Tensor& k,
              const ops::AttentionOptions& options) {
  if (!options.causal) return;
  if (q.size(2) == k.size(2))
    attributes.set_causal_mask(true);
  else
    attributes.set_causal_mask_bottom_right(true);
}

// WICK_CUDNN_DETERMINISTIC=0 lets the backward use cuDNN's faster algorithm whose sums are not ordered (for
// measurements; training's exact resume needs the ordered one).
bool deterministic() {
  const char* value = std::getenv("WICK_CUDNN_DETERMINISTIC");
  return value == nullptr || std::string_view(value) != "0";
}

std::string key_of(std::string_view kind, const std::vector<const Tensor*>& tensors,
                   const ops::AttentionOptions& options, const Tensor& q) {
  std::string key = fmt::format("{} {} {} {:a} cuda:{} {}", kind, dtype_name(q.dtype()), options.causal,
                                scale_of(q, options), q.device().index, deterministic());
  for (const Tensor* t : tensors)
    key += fmt::format(" [{}|{}]", fmt::join(dims(*t), ","), fmt::join(strides(*t), ","));
  return key;
}

// Builds (once per key) the graph `describe` makes; the plan has a null graph where cuDNN cannot run it.
template <typename Describe>
const Plan& plan_for(const std::string& key, int device, Describe&& describe) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  auto found = s.plans.find(key);
  if (found != s.plans.end()) return found->second;
  Plan plan;
  try {
    cuda::DeviceGuard guard(device);
    cudnnHandle_t handle = handle_for(device);
    auto graph = std::make_shared<fe::graph::Graph>();
    graph->set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(fe::DataType_t::FLOAT);
    describe(*graph);
    auto status = graph->build(handle, {fe::HeurMode_t::A});
    if (status.is_good()) status = graph->get_workspace_size(plan.workspace);
    if (status.is_good())
      plan.graph = std::move(graph);
    else
      plan.error = status.get_message();
  } catch (const std::exception& e) {
    plan.error = e.what();
  }
  return s.plans.emplace(key, std::move(plan)).first->second;
}

const Plan& forward_plan(const Tensor& q, const Tensor& k, const Tensor& v,
                         const ops::AttentionOptions& options, const Tensor& out) {
  const std::string key = key_of("forward", {&q, &k, &v, &out}, options, q);
  return plan_for(key, q.device().index, [&](fe::graph::Graph& graph) {
    graph.set_io_data_type(data_type(q.dtype()));
    auto attributes = fe::graph::SDPA_attributes()
                          .set_name("attention")
                          .set_generate_stats(true)
                          .set_attn_scale(static_cast<float>(scale_of(q, options)));
    set_mask(attributes, q, k, options);
    auto [o, stats] =
        graph.sdpa(input(graph, "q", kQ, q), input(graph, "k", kK, k), input(graph, "v", kV, v), attributes);
    o->set_output(true).set_uid(kO).set_dim(dims(out)).set_stride(strides(out));
    const int64_t heads = q.size(1), rows = q.size(2);
    stats->set_output(true)
        .set_uid(kStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({q.size(0), heads, rows, 1})
        .set_stride({heads * rows, rows, 1, 1});
  });
}

const Plan& backward_plan(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& dout, const ops::AttentionOptions& options, const Tensor& dq,
                          const Tensor& dk, const Tensor& dv) {
  const std::string key = key_of("backward", {&q, &k, &v, &out, &dout, &dq, &dk, &dv}, options, q);
  return plan_for(key, q.device().index, [&](fe::graph::Graph& graph) {
    graph.set_io_data_type(data_type(q.dtype()));
    auto attributes = fe::graph::SDPA_backward_attributes()
                          .set_name("attention_backward")
                          .set_attn_scale(static_cast<float>(scale_of(q, options)))
                          .set_deterministic_algorithm(deterministic());
    set_mask(attributes, q, k, options);
    const int64_t heads = q.size(1), rows = q.size(2);
    auto stats = graph.tensor(fe::graph::Tensor_attributes()
                                  .set_name("stats")
                                  .set_uid(kStats)
                                  .set_data_type(fe::DataType_t::FLOAT)
                                  .set_dim({q.size(0), heads, rows, 1})
                                  .set_stride({heads * rows, rows, 1, 1}));
    auto [gq, gk, gv] =
        graph.sdpa_backward(input(graph, "q", kQ, q), input(graph, "k", kK, k), input(graph, "v", kV, v),
                            input(graph, "o", kO, out), input(graph, "do", kDO, dout), stats, attributes);
    gq->set_output(true).set_uid(kDQ).set_dim(dims(dq)).set_stride(strides(dq));
    gk->set_output(true).set_uid(kDK).set_dim(dims(dk)).set_stride(strides(dk));
    gv->set_output(true).set_uid(kDV).set_dim(dims(dv)).set_stride(strides(dv));
  });
}

void execute(std::string_view op, const Plan& plan, int device, std::unordered_map<int64_t, void*> pointers) {
  if (plan.graph == nullptr) raise(op, "cuDNN has no engine for this call: " + plan.error);
  const Tensor workspace =
      plan.workspace > 0 ? Tensor::empty({plan.workspace}, DType::u8, Device::cuda(device)) : Tensor();
  cuda::DeviceGuard guard(device);
  fe::error_t status;
  {
    std::lock_guard lock(state().mutex);
    cudnnHandle_t handle = handle_for(device);
    if (fe::detail::set_stream(handle, cuda::stream_for(device)) != CUDNN_STATUS_SUCCESS)
      raise(op, "cuDNN could not take the stream");
    status = plan.graph->execute(handle, pointers, workspace.defined() ? workspace.data_ptr() : nullptr);
  }
  if (status.is_bad()) raise(op, "cuDNN attention failed: " + status.get_message());
}

}  // namespace

bool available() {
  return library().loaded;
}

std::string unavailable_reason() {
  return library().reason;
}

bool attention_applies(const Tensor& q, const Tensor& k, const Tensor& v,
                       const ops::AttentionOptions& options, const Tensor& out) {
  if (!inputs_supported(q, k, v, options) || !rows_aligned(out) || out.dtype() != q.dtype()) return false;
  return forward_plan(q, k, v, options, out).graph != nullptr;
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
               const Tensor& out, const Tensor& lse) {
  if (!lse.is_contiguous() || lse.dtype() != DType::f32)
    raise("attention", "cuDNN attention writes a contiguous f32 lse, got " + lse.str());
  const Plan& plan = forward_plan(q, k, v, options, out);
  execute("attention", plan, q.device().index,
          {{kQ, q.data_ptr()},
           {kK, k.data_ptr()},
           {kV, v.data_ptr()},
           {kO, out.data_ptr()},
           {kStats, lse.data_ptr()}});
}

bool attention_backward_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                const Tensor& dout, const ops::AttentionOptions& options, const Tensor& dq,
                                const Tensor& dk, const Tensor& dv) {
  if (!inputs_supported(q, k, v, options)) return false;
  for (const Tensor* t : {&out, &dout, &dq, &dk, &dv})
    if (t->dtype() != q.dtype() || !rows_aligned(*t)) return false;
  return backward_plan(q, k, v, out, dout, options, dq, dk, dv).graph != nullptr;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  if (!lse.is_contiguous() || lse.dtype() != DType::f32)
    raise("attention_backward", "cuDNN attention reads a contiguous f32 lse, got " + lse.str());
  const Plan& plan = backward_plan(q, k, v, out, dout, options, dq, dk, dv);
  execute("attention_backward", plan, q.device().index,
          {{kQ, q.data_ptr()},
           {kK, k.data_ptr()},
           {kV, v.data_ptr()},
           {kO, out.data_ptr()},
           {kDO, dout.data_ptr()},
           {kStats, lse.data_ptr()},
           {kDQ, dq.data_ptr()},
           {kDK, dk.data_ptr()},
           {kDV, dv.data_ptr()}});
}

}  // namespace wick::cudnn
