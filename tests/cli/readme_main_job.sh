#!/usr/bin/env bash
# The README's main-job command as written there — LoRA fine-tuning of the real SmolLM2-135M-Instruct on the
# CPU, then chat with the adapted model — run with this build's binary and the adapter in a temporary folder.
# Checks that training wrote a PEFT adapter folder whose loss fell, and that the chat produced text. Skips
# (exit 77) when $WICK_MODELS_DIR holds no SmolLM2.
set -euo pipefail
wick=$1
root=$2
if [[ -z ${WICK_MODELS_DIR:-} || ! -f $WICK_MODELS_DIR/SmolLM2-135M-Instruct/model.safetensors ]]; then
  echo "WICK_MODELS_DIR with SmolLM2-135M-Instruct is not set: skipped"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The part after the model folder is chosen: "./build/wick train ... && ./build/wick generate ...".
line=$(grep -m1 'SmolLM2-135M-Instruct" && ./build/wick train' "$root/README.md")
job=${line#*SmolLM2-135M-Instruct\" && }
[[ $job == ./build/wick\ train* ]] || { echo "README main-job command not found"; exit 1; }
job=${job//.\/build\/wick/\"\$wick\"}
job=${job//smol-adapter/\"\$work\/smol-adapter\"}
M=$WICK_MODELS_DIR/SmolLM2-135M-Instruct
cd "$root"
eval "$job" > "$work/out" 2> "$work/log"
test -f "$work/smol-adapter/adapter_model.safetensors" -a -f "$work/smol-adapter/adapter_config.json"
# The loss log: the last step's loss below the first's.
awk -F, 'NR == 2 { first = $3 } END { if (!($3 < first)) exit 1 }' "$work/smol-adapter/loss.csv"
grep -q '[[:alnum:]]' "$work/out"
grep -q "generated" "$work/log"
echo "ok"
