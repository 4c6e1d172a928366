// Elementwise kinds shared by the CPU and CUDA kernel interfaces.
#pragma once

namespace wick::backend {

enum class Unary { silu, gelu_erf, gelu_tanh };
enum class Binary { add, sub, mul, div };

}  // namespace wick::backend
