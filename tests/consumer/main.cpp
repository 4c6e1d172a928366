// Multiplies two small matrices through the installed wick library and checks the product.
#include <cstdio>

#include <wick/wick.h>

int main() {
  const wick::Tensor a = wick::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const wick::Tensor b = wick::Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  const std::vector<float> c = wick::ops::matmul(a, b).to_vector<float>();
  const std::vector<float> expected = {4, 5, 10, 11};
  if (c != expected) {
    std::puts("consumer: wrong product");
    return 1;
  }
  std::puts("consumer: wick::ops::matmul through find_package(wick) works");
  return 0;
}
