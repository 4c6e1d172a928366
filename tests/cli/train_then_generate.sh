#!/usr/bin/env bash
# End to end through the binary: `wick train` on the tiny Qwen2 model with a JSON config (and a flag that
# overrides it), a resume from the latest checkpoint reproducing the uninterrupted loss log, then
# `wick generate --adapter` and `--chat` with the trained adapter; bad input gives one clear error.
set -euo pipefail
wick=$1
data=$2
model=$data/models/tiny-qwen2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/config.json" <<JSON
{"data": "$data/train/chat.jsonl", "epochs": 2, "lr": 0.5, "batch-size": 4, "rank": 4, "save-every": 5,
 "validation-fraction": 0.1, "eval-every": 5, "lora-dropout": 0.1}
JSON
"$wick" train "$model" --config "$work/config.json" --lr 0.01 -o "$work/run" 2> "$work/log"
grep -q "final loss" "$work/log"
test -f "$work/run/adapter_model.safetensors" -a -f "$work/run/adapter_config.json"
test -f "$work/run/loss.svg"
grep -q '"lora_dropout": 0.1' "$work/run/adapter_config.json"
# The flag won over the config: the first step ran at lr 0.01 (cosine, no warmup).
awk -F, 'NR == 2 && $5 != "0.01" { exit 1 }' "$work/run/loss.csv"
cp "$work/run/loss.csv" "$work/straight.csv"
# Resume from checkpoint 5 after removing the later ones: the same loss log.
for dir in "$work"/run/checkpoint-*; do
  step=${dir##*-}
  if (( step > 5 )); then rm -rf "$dir"; fi
done
"$wick" train "$model" --config "$work/config.json" --lr 0.01 -o "$work/run" --resume latest 2> "$work/log2"
grep -q "resumed from .*checkpoint-5 at step 5" "$work/log2"
diff <(cut -d, -f1-6 "$work/straight.csv") <(cut -d, -f1-6 "$work/run/loss.csv")
# Generation with the adapter, plain and chat.
"$wick" generate "$model" --adapter "$work/run" -p "Tom" -n 8 --temperature 0 > "$work/out" 2>&1
grep -q "generated" "$work/out"
"$wick" generate "$model" --adapter "$work/run" --chat -p "Tell me about Mia." -n 8 --temperature 0 > "$work/chat" 2>&1
grep -q "prompt tokens" "$work/chat"
# Several prompts at once: one JSON line each, the same text as each prompt alone.
printf 'Tom saw\nMia was\n\nA big\n' > "$work/prompts.txt"
"$wick" generate "$model" --adapter "$work/run" -i "$work/prompts.txt" -n 8 --temperature 0 > "$work/batch.jsonl" 2> /dev/null
test "$(wc -l < "$work/batch.jsonl")" -eq 3
# The batch summary gives prompt and generation rates.
"$wick" generate "$model" -i "$work/prompts.txt" -n 4 --temperature 0 > /dev/null 2> "$work/summary"
grep -q "3 prompts: .* prompt tokens in .* generated in" "$work/summary"
alone=$("$wick" generate "$model" --adapter "$work/run" -p "Mia was" -n 8 --temperature 0 2> /dev/null | head -c -1)
python3 -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; assert rows[1]["prompt"] == "Mia was"; assert rows[1]["text"] == sys.argv[2], (rows[1]["text"], sys.argv[2])' "$work/batch.jsonl" "$alone"
# Bad input: one clear error each, non-zero exit.
printf '{"text": "fine"}\n{"text": oops}\n' > "$work/bad.jsonl"
if "$wick" train "$model" --data "$work/bad.jsonl" -o "$work/bad" 2> "$work/err"; then exit 1; fi
grep -q "bad.jsonl:2: not valid JSON" "$work/err"
if "$wick" generate "$model" --adapter "$data/peft/initial" -p x --top-p 1.5 2> "$work/err"; then exit 1; fi
grep -q "top_p" "$work/err"
echo "ok"
