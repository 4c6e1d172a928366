#include "wick/models/weights.h"

#include "wick/error.h"
#include "wick/random.h"

namespace wick::models {

void check_weight_shape(const std::string& origin, const std::string& name, const Shape& actual,
                        const Shape& expected) {
  if (actual != expected)
    fail("model", "{}: tensor '{}' has shape {} but the config needs {}", origin, name, shape_str(actual),
         shape_str(expected));
}

Tensor TensorMapSource::load(const std::string& name, const Shape& expected, Device device,
                             DType dtype) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) fail("model", "{}: missing tensor '{}'", origin_, name);
  check_weight_shape(origin_, name, found->second.shape(), expected);
  return found->second.to(dtype).to(device).contiguous();
}

Tensor RandomWeights::load(const std::string& name, const Shape& expected, Device device, DType dtype) const {
  Generator generator(seed_);
  generator.set_draws(draws_++);
  const bool scale = name.find("norm") != std::string::npos || name.find("LayerNorm") != std::string::npos;
  return rand_normal(expected, generator, scale ? 1.0 : 0.0, scale ? 0.05 : 0.02, dtype, device);
}

CheckpointSource CheckpointSource::open(const std::string& path) {
  return CheckpointSource(io::SafetensorsCheckpoint::open(path));
}

Tensor CheckpointSource::load(const std::string& name, const Shape& expected, Device device,
                              DType dtype) const {
  if (!checkpoint_.contains(name)) fail("model", "{}: missing tensor '{}'", origin(), name);
  const std::string file = checkpoint_.file(name).path().string();
  const io::TensorInfo& info = checkpoint_.info(name);
  // Weights are floating point; integer or quantized storage would need a dequantization step.
  if (!info.dtype || !is_floating(*info.dtype))
    fail("model", "{}: tensor '{}' is stored as {}, expected a floating-point dtype (F32, F16, BF16, F64)",
         file, name, info.format_dtype);
  check_weight_shape(file, name, info.shape, expected);
  return checkpoint_.load(name, device, dtype);
}

void pack_rows(std::initializer_list<Tensor*> parts, Tensor& packed) {
  int64_t rows = 0;
  for (const Tensor* t : parts) rows += t->size(0);
  Shape shape = (*parts.begin())->shape();
  shape[0] = rows;
  packed = Tensor::empty(shape, (*parts.begin())->dtype(), (*parts.begin())->device());
  int64_t at = 0;
  for (Tensor* t : parts) {
    Tensor block = packed.narrow(0, at, t->size(0));
    block.copy_(*t);
    at += t->size(0);
    *t = block;
  }
}

}  // namespace wick::models
