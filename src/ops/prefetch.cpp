#include "wick/ops/prefetch.h"

#ifdef WICK_WITH_CUDA
#include "backend/cuda/prefetch.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct PrefetchCall {
  const std::vector<Tensor>& tensors;
};

bool all_on_cuda(const PrefetchCall& c) {
  bool any = false;
  for (const Tensor& t : c.tensors) {
    if (!t.defined()) continue;
    if (!t.device().is_cuda()) return false;
    any = true;
  }
  return any;
}

}  // namespace

void prefetch(const std::vector<Tensor>& tensors) {
  constexpr std::string_view op = "prefetch";
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (first == nullptr) first = &t;
    if (t.device() != first->device())
      fail(op, "all tensors must be on one device, got {} and {}", first->str(), t.str());
  }
  static const std::vector<Implementation<PrefetchCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_l2", "cuda tensors (at most 8)",
       [](const PrefetchCall& c) { return all_on_cuda(c) && c.tensors.size() <= 8; },
       [](const PrefetchCall& c) { cuda::prefetch_to_l2(c.tensors); }},
#endif
      {"none", "nothing (a hint: nothing to do off a GPU)", [](const PrefetchCall&) { return true; },
       [](const PrefetchCall&) {}},
  };
  dispatch(op, table, PrefetchCall{tensors}, first ? first->str() : std::string("no tensors"));
}

}  // namespace wick::ops
