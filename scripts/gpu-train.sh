#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): writes the PEFT golden files (PEFT in
# float64 on the tiny Qwen2 model, reading wick's trained adapter too) into $OUT/peft and tests/data/peft, runs the
# CUDA and CPU training tests against them, then the LoRA training benchmark side by side with PEFT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
status=0
if [[ "${GOLDEN:-1}" == 1 ]]; then
  echo "== PEFT golden files"
  mkdir -p "$out/peft"
  cp -r tests/data/peft/wick-trained "$out/peft/"
  python3 tests/train/make_peft_golden.py tests/data/models/tiny-qwen2 "$out/peft" 2>&1 | grep -v Warning | tail -n 3
  cp -r "$out/peft/initial" "$out/peft/trained" "$out/peft/golden.safetensors" tests/data/peft/
fi
echo "== CUDA tests"
"$build/tests/wick_cuda_tests" --gtest_brief=1 2>&1 | tee "$out/cuda-tests.log" | tail -n 30 || status=1
echo "== CPU training tests"
"$build/tests/wick_tests" --gtest_brief=1 --gtest_filter='PeftParity*:LoraTraining*:Trainer*:LoraAdapter*' 2>&1 | tail -n 12 || status=1
if [[ "${BENCH:-1}" == 1 ]]; then
  echo "== LoRA training: wick vs PEFT (Qwen2.5-0.5B shape, bf16, r=16, all 7 projections)"
  for shape in "8 1024" "4 512"; do
    set -- $shape
    "$build/wick" bench train --device cuda --batch "$1" --tokens "$2" --json "$out/wick-train.jsonl" 2>&1 | tail -n 2
    "$build/wick" bench train --device cuda --batch "$1" --tokens "$2" --checkpointing --json "$out/wick-train.jsonl" 2>&1 | tail -n 2
    python3 bench/train_peft.py --batch "$1" --tokens "$2" --json "$out/peft-train.jsonl" 2>&1 | grep -v Warning | tail -n 2
  done
fi
exit $status
