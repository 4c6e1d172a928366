// Greedy decoding with the step's positions held on the device: each step is the decoder's
// forward_at_positions, an argmax that writes the next ids where the step reads them, and position
// increments. On a GPU the step is captured once as a CUDA graph and replayed, one launch per token; on the
// CPU it runs as is. Only the chosen ids come back to the host.
#pragma once

#include <memory>
#include <vector>

#include "wick/cuda.h"
#include "wick/models/decoder.h"

namespace wick::generate {

class GreedySteps {
 public:
  // `cache` holds each row's prompt (row b up to positions[b]); `first` are the ids sampled after the
  // prefill.
  GreedySteps(const models::Decoder& model, models::KvCache& cache, const lora::LoraAdapter* adapter,
              const std::vector<int32_t>& first, const std::vector<int64_t>& positions);
  // Feeds the current ids and returns the next ones.
  std::vector<int32_t> step();

 private:
  void body();

  const models::Decoder& model_;
  models::KvCache& cache_;
  const lora::LoraAdapter* adapter_;
  Tensor ids_, positions_, lengths_;
  std::unique_ptr<cuda::Graph> graph_;
};

}  // namespace wick::generate
