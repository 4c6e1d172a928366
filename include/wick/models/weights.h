// Where a model's tensors come from: Hugging Face tensor names in, tensors on the model's device and dtype
// out.
#pragma once

#include <initializer_list>
#include <map>
#include <string>

#include "wick/io/safetensors.h"
#include "wick/tensor.h"

namespace wick::models {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  // The tensor `name`, checked against the shape the config implies, converted to (device, dtype). Throws a
  // clear error naming the tensor (and its file) when it is missing or has another shape.
  virtual Tensor load(const std::string& name, const Shape& expected, Device device, DType dtype) const = 0;
  // Where the tensors come from, for messages.
  virtual std::string origin() const = 0;
};

// Tensors held in memory by name (tests, and weights built in code).
class TensorMapSource final : public WeightSource {
 public:
  explicit TensorMapSource(std::map<std::string, Tensor> tensors, std::string origin = "tensor map")
      : tensors_(std::move(tensors)), origin_(std::move(origin)) {}
  bool contains(const std::string& name) const override { return tensors_.count(name) > 0; }
  Tensor load(const std::string& name, const Shape& expected, Device device, DType dtype) const override;
  std::string origin() const override { return origin_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::string origin_;
};

// Tensors of a safetensors checkpoint (one file or shards), loaded straight to the target device and dtype.
class CheckpointSource final : public WeightSource {
 public:
  explicit CheckpointSource(io::SafetensorsCheckpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}
  // Opens the checkpoint in a model directory (or a .safetensors / index file).
  static CheckpointSource open(const std::string& path);
  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }
  Tensor load(const std::string& name, const Shape& expected, Device device, DType dtype) const override;
  std::string origin() const override { return checkpoint_.path().string(); }
  const io::SafetensorsCheckpoint& checkpoint() const { return checkpoint_; }

 private:
  io::SafetensorsCheckpoint checkpoint_;
};

// Random normal weights (std 0.02, norms' scales 1) of whatever shape the model asks for: benchmarks of a
// model's shape without its files. Names with a prefix the model probes for ("bert.") are reported absent.
class RandomWeights final : public WeightSource {
 public:
  explicit RandomWeights(uint64_t seed) : seed_(seed) {}
  bool contains(const std::string& name) const override { return name.rfind("bert.", 0) != 0; }
  Tensor load(const std::string& name, const Shape& expected, Device device, DType dtype) const override;
  std::string origin() const override { return "random weights"; }

 private:
  uint64_t seed_;
  mutable uint64_t draws_ = 0;
};

// The shared check: `actual` must equal `expected` for tensor `name` from `origin`.
void check_weight_shape(const std::string& origin, const std::string& name, const Shape& actual,
                        const Shape& expected);

// Copies the tensors into one new buffer `packed`, stacked along axis 0, and makes each a view of its block:
// projections that read the same input become one product.
void pack_rows(std::initializer_list<Tensor*> parts, Tensor& packed);

}  // namespace wick::models
