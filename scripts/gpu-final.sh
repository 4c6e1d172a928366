#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): the whole CUDA test suite, the CPU
# suite, compute-sanitizer memcheck and racecheck on small cases of the decode, flash and elementwise
# kernels, then generation, embedding, training and attention benchmarks side by side with their PyTorch peers
# (cuDNN from PyTorch's wheel, see gpu-env.sh). Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$build/tests/wick_cuda_tests" --gtest_brief=1 >"$out/cuda-tests.log" 2>&1
echo "cuda tests exit $?"; tail -n 4 "$out/cuda-tests.log"
# The CPU suite when carried (the binaries together come close to the carry limit; CI runs it anyway).
if [[ -x "$build/tests/wick_tests" ]]; then "$build/tests/wick_tests" --gtest_brief=1 2>&1 | tail -n 2; fi
small='Dtypes/CudaDecode.*Composition/bf16:Dtypes/CudaDecode.GemvMatchesFloat64AtDecodeShapes/bf16'
small+=':Dtypes/FlashAttention.SanitizerSmall/bf16:Dtypes/Cuda.Vectorized*/bf16:Dtypes/Cuda.LayerNorm*/bf16'
small+=':Dtypes/CudaEncoder.*/bf16:Dtypes/Cuda.RopeFullRotaryRows/bf16:Dtypes/Cuda.RmsNormBackwardFrozenWeight/bf16'
small+=':Dtypes/Cuda.CrossEntropyVectorRows/bf16:Dtypes/Cuda.VectorizedActivationsSwigluAndAdd/bf16'
small+=':Dtypes/Cuda.SwigluLoraBackward/bf16'
for tool in memcheck racecheck; do
  compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/tests/wick_cuda_tests" --gtest_filter="$small" \
    >"$out/sanitizer-$tool.log" 2>&1
  echo "$tool exit $?: $(grep -cE '(ERROR|RACECHECK) SUMMARY: 0 ' "$out/sanitizer-$tool.log") clean summaries"
done
echo "== generation (Qwen2.5-0.5B shape, bf16)"
for batch in 1 8 32; do "$build/wick" bench generate --device cuda --batch "$batch" 2>&1 | tail -n 2; done
python3 bench/generate_torch.py --json "$out/torch-generate.json" 2>&1 | grep -v -i warn | tail -n 8
echo "== embeddings (MiniLM shape, f16)"
"$build/wick" bench embed --device cuda --dtype f16 --repeats 30 2>&1 | tail -n 3
python3 bench/embed_torch.py --dtype f16 --repeats 30 --json "$out/torch-embed.jsonl" 2>&1 | tail -n 3
for shape in "8 1024" "4 512"; do
  set -- $shape
  echo "== LoRA training $1x$2 (r=16, all 7 projections)"
  "$build/wick" bench train --device cuda --batch "$1" --tokens "$2" 2>&1 | tail -n 2
  python3 bench/train_peft.py --batch "$1" --tokens "$2" --json "$out/peft-train.jsonl" 2>&1 | grep -v Warning | tail -n 2
done
echo "== attention (wick's default choice and each implementation, then PyTorch's SDPA)"
WICK_ATTENTION_BENCH=1 WICK_ATTENTION_BENCH_CSV="$out/wick-attention.csv" "$build/tests/wick_cuda_tests" \
  --gtest_filter='FlashAttentionBench.*' >"$out/wick-attention.txt" 2>&1
grep "first call" "$out/wick-attention.txt"
python3 bench/attention_torch.py --wick "$out/wick-attention.csv" 2>&1 | tail -n 13
