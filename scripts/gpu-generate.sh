#!/usr/bin/env bash
# Runs on the GPU machine over a build made elsewhere (carry build-cuda): the generation benchmark with a
# Qwen2.5-0.5B-shaped model (prefill of 2048 tokens; greedy decoding of 128 tokens after a 64-token prompt at
# batch 1, 8 and 32) side by side with transformers (bench/generate_torch.py). Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
build=${BUILD:-build-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
echo "== generation: wick vs transformers (Qwen2.5-0.5B shape, bf16, random weights)"
for batch in 1 8 32; do
  "$build/wick" bench generate --device cuda --batch "$batch" --json "$out/wick-generate.jsonl" 2>&1 | tail -n 2
done
python3 bench/generate_torch.py --json "$out/torch-generate.json" 2>&1 | grep -v -i warn | tail -n 8
