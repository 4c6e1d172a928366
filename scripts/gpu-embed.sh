#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): the CUDA test suite,
# compute-sanitizer memcheck and racecheck on the encoder and LayerNorm kernels, then the embedding benchmark
# beside its PyTorch peer (twice each, interleaved). Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
timeout 240 "$build/tests/wick_cuda_tests" --gtest_brief=1 >"$out/cuda-tests.log" 2>&1
echo "cuda tests exit $?"; grep -E "FAILED|Failure" "$out/cuda-tests.log" | head -n 20; tail -n 3 "$out/cuda-tests.log"
small='Dtypes/CudaEncoder.*/bf16:Dtypes/Cuda.LayerNorm*/bf16'
for tool in memcheck racecheck; do
  timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/tests/wick_cuda_tests" \
    --gtest_filter="$small" >"$out/sanitizer-$tool.log" 2>&1
  echo "$tool exit $?: $(grep -c 'ERROR SUMMARY: 0' "$out/sanitizer-$tool.log") clean summaries"
done
echo "== embeddings (MiniLM shape, f16)"
for round in 1 2; do
  "$build/wick" bench embed --device cuda --dtype f16 --repeats 50 --json "$out/wick-embed-$round.jsonl" 2>&1 |
    tail -n 3
  python3 bench/embed_torch.py --dtype f16 --repeats 50 --json "$out/torch-embed-$round.jsonl" 2>&1 | tail -n 3
done
