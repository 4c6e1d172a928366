#include "generate/greedy_steps.h"

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::generate {

GreedySteps::GreedySteps(const models::Decoder& model, models::KvCache& cache,
                         const lora::LoraAdapter* adapter, const std::vector<int32_t>& first,
                         const std::vector<int64_t>& positions)
    : model_(model), cache_(cache), adapter_(adapter) {
  const auto rows = static_cast<int64_t>(first.size());
  std::vector<int64_t> ids(first.begin(), first.end()), lengths;
  for (int64_t p : positions) lengths.push_back(p + 1);
  ids_ = Tensor::from_vector(ids, {rows, 1}).to(model.device());
  positions_ = Tensor::from_vector(positions, {rows}).to(model.device());
  lengths_ = Tensor::from_vector(lengths, {rows}).to(model.device());
}

void GreedySteps::body() {
  const Tensor logits = model_.forward_at_positions(ids_, positions_, lengths_, cache_, adapter_);
  ids_.view({ids_.size(0)}).copy_(ops::argmax(logits));
  ops::increment(positions_);
  ops::increment(lengths_);
}

std::vector<int32_t> GreedySteps::step() {
  if (model_.device().is_cuda()) {
    if (!graph_) {
      graph_ = std::make_unique<cuda::Graph>(model_.device().index);
      graph_->begin();
      body();
      graph_->end();
    }
    graph_->replay();
  } else {
    body();
  }
  const std::vector<int64_t> next = ids_.to_vector<int64_t>();
  return std::vector<int32_t>(next.begin(), next.end());
}

}  // namespace wick::generate
