#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. release build (CUDA code compiled too when a CUDA compiler is present, with cuDNN attention when its
#      headers can be fetched) and every test (GPU tests skip cleanly without a GPU);
#   2. the CPU suite again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. install, then build and run a consumer project through find_package(wick);
#   4. the libFuzzer targets for the safetensors header and tokenizer.json, each for a bounded time;
#   5. the formatting check.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
jobs=$(nproc)

echo "== real models for the end-to-end tests"
WICK_MODELS_DIR=$(bash scripts/fetch-models.sh)
export WICK_MODELS_DIR

if command -v nvcc >/dev/null; then
  echo "== cuDNN frontend headers (cuDNN attention is compiled with them; optional)"
  bash scripts/fetch-cudnn-frontend.sh || echo "cuDNN frontend headers unavailable: building without cuDNN attention"
fi

echo "== release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWICK_CUDA=AUTO
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== sanitizer build (ASan + UBSan) and CPU tests"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWICK_CUDA=OFF -DWICK_SANITIZE=ON
cmake --build build-sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -j "$jobs" -L cpu

echo "== install and find_package(wick) from a consumer project"
prefix=$(mktemp -d)
cmake --install build --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B build-consumer -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build-consumer
./build-consumer/consumer
"$prefix/bin/wick" info

echo "== fuzzing: safetensors header and tokenizer.json parsing (libFuzzer, bounded time)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DWICK_CUDA=OFF -DWICK_BUILD_TESTS=OFF -DWICK_FUZZ=ON
cmake --build build-fuzz -j "$jobs" --target safetensors_fuzz tokenizer_fuzz
corpus=$(mktemp -d)
mkdir -p "$corpus/safetensors" "$corpus/tokenizer"
cp tests/data/safetensors_fixture.safetensors tests/data/models/tiny-bert/golden.safetensors "$corpus/safetensors/"
cp tests/data/tokenizers/fuzz_seed_*.json "$corpus/tokenizer/"
for target in safetensors tokenizer; do
  # The fuzzer's progress lines go to a log; a finding fails the run and prints the log's end.
  if ! "./build-fuzz/fuzz/${target}_fuzz" -max_total_time="${FUZZ_SECONDS:-60}" "$corpus/$target" \
      > "build-fuzz/${target}_fuzz.log" 2>&1; then
    tail -n 40 "build-fuzz/${target}_fuzz.log"
    exit 1
  fi
  echo "$target: $(grep -E '^Done' "build-fuzz/${target}_fuzz.log")"
done

echo "== formatting"
git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' | xargs clang-format --dry-run -Werror

echo "== all test stages passed"
