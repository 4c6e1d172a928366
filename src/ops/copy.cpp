#include "ops/copy.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct CopyCall {
  const Tensor& dst;
  const Tensor& src;
};

struct FillCall {
  const Tensor& dst;
  double value;
};

}  // namespace

void copy_same_device(const Tensor& dst, const Tensor& src) {
  check_defined("copy", "dst", dst);
  check_defined("copy", "src", src);
  check_shape("copy", "src", src, dst.shape());
  check_same_device("copy", {{"dst", &dst}, {"src", &src}});
  static const std::vector<Implementation<CopyCall>> table = {
      {"cpu", "cpu tensors",
       [](const CopyCall& c) {
         return on_cpu({&c.dst, &c.src});
       },
       [](const CopyCall& c) { cpu::copy(c.dst, c.src); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const CopyCall& c) {
         return on_cuda({&c.dst, &c.src});
       },
       [](const CopyCall& c) { cuda::copy(c.dst, c.src); }},
#endif
  };
  dispatch("copy", table, CopyCall{dst, src}, describe({{"dst", &dst}, {"src", &src}}));
}

void fill(const Tensor& dst, double value) {
  check_defined("fill", "dst", dst);
  static const std::vector<Implementation<FillCall>> table = {
      {"cpu", "a cpu tensor", [](const FillCall& c) { return on_cpu({&c.dst}); },
       [](const FillCall& c) { cpu::fill(c.dst, c.value); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const FillCall& c) { return on_cuda({&c.dst}); },
       [](const FillCall& c) { cuda::fill(c.dst, c.value); }},
#endif
  };
  dispatch("fill", table, FillCall{dst, value}, dst.str());
}

}  // namespace wick::ops
