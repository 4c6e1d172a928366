#!/usr/bin/env bash
# `wick embed` and `wick inspect` through the binary on the real all-MiniLM-L6-v2 (fetched by
# scripts/fetch-models.sh into $WICK_MODELS_DIR): JSON lines from a file and from stdin, a .npy matrix with the
# same values, embeddings equal to sentence-transformers' golden ones, the pooling and normalisation switches,
# the model's own pooling config honoured or refused; inspect's report of a good model and of a broken one
# (exit code 2); bad options give one clear error. Skips (exit 77) when the models folder is not set.
set -euo pipefail
wick=$1
data=$2
if [[ -z ${WICK_MODELS_DIR:-} || ! -f $WICK_MODELS_DIR/all-MiniLM-L6-v2/model.safetensors ]]; then
  echo "WICK_MODELS_DIR with all-MiniLM-L6-v2 is not set: skipped"
  exit 77
fi
model=$WICK_MODELS_DIR/all-MiniLM-L6-v2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sentences=$data/embeddings/sentences.txt

"$wick" embed "$model" -i "$sentences" --batch-size 5 > "$work/file.jsonl" 2> /dev/null
head -n 3 "$sentences" | "$wick" embed "$model" > "$work/stdin.jsonl" 2> /dev/null
"$wick" embed "$model" -i "$sentences" --format npy -o "$work/all.npy" 2> /dev/null
"$wick" embed "$model" -i "$sentences" --no-normalize > "$work/raw.jsonl" 2> /dev/null
"$wick" embed "$model" -i "$sentences" --pooling cls > "$work/cls.jsonl" 2> /dev/null
python3 - "$work" "$sentences" "$data/embeddings/minilm_golden.json" <<'PY'
import json, math, struct, sys
work, sentences, golden_path = sys.argv[1:4]
count = sum(1 for _ in open(sentences, encoding="utf-8"))
def rows(name):
    lines = [json.loads(l) for l in open(f"{work}/{name}")]
    assert [r["index"] for r in lines] == list(range(len(lines))), name
    return [r["embedding"] for r in lines]
def norm(v): return math.sqrt(sum(x * x for x in v))
def cosine(a, b): return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))
file_rows = rows("file.jsonl")
assert len(file_rows) == count and all(len(r) == 384 for r in file_rows), (len(file_rows), count)
assert all(abs(norm(r) - 1) < 1e-5 for r in file_rows)
golden = json.load(open(golden_path))["embeddings"]
worst = min(cosine(a, b) for a, b in zip(file_rows, golden))
assert len(golden) == count and worst >= 0.9999, worst
stdin_rows = rows("stdin.jsonl")
assert len(stdin_rows) == 3 and all(max(abs(x - y) for x, y in zip(a, b)) < 1e-6 for a, b in zip(stdin_rows, file_rows))
with open(f"{work}/all.npy", "rb") as f:
    assert f.read(6) == b"\x93NUMPY"
    f.read(2)
    (length,) = struct.unpack("<H", f.read(2))
    header = f.read(length).decode()
    assert f"'shape': ({count}, 384)" in header and "'<f4'" in header, header
    values = struct.unpack(f"<{count * 384}f", f.read())
assert max(abs(values[i * 384 + j] - file_rows[i][j]) for i in range(count) for j in range(384)) < 1e-6
raw = rows("raw.jsonl")
assert any(abs(norm(r) - 1) > 1e-2 for r in raw)
assert all(cosine(a, b) > 0.99999 for a, b in zip(raw, file_rows))
cls = rows("cls.jsonl")
assert all(abs(norm(r) - 1) < 1e-5 for r in cls) and min(cosine(a, b) for a, b in zip(cls, file_rows)) < 0.99
PY

# The model's own settings: a pooling mode wick does not have is refused by name (--pooling overrides it);
# without a Normalize module the embeddings are not normalised.
copy=$work/copy
mkdir -p "$copy/1_Pooling"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  if [[ -e $model/$f ]]; then ln -s "$model/$f" "$copy/$f"; fi
done
echo '{"pooling_mode_max_tokens": true, "pooling_mode_mean_tokens": false}' > "$copy/1_Pooling/config.json"
if "$wick" embed "$copy" -i "$sentences" > /dev/null 2> "$work/err"; then exit 1; fi
grep -q "pooling mode max_tokens is not supported" "$work/err"
echo '[{"idx": 0, "type": "sentence_transformers.models.Transformer"}]' > "$copy/modules.json"
"$wick" embed "$copy" -i "$sentences" --pooling mean > "$work/plain.jsonl" 2> /dev/null
cmp <(python3 -c 'import json,sys; [print(["%.6f" % x for x in json.loads(l)["embedding"][:8]]) for l in open(sys.argv[1])]' "$work/plain.jsonl") \
    <(python3 -c 'import json,sys; [print(["%.6f" % x for x in json.loads(l)["embedding"][:8]]) for l in open(sys.argv[1])]' "$work/raw.jsonl")

# Bad options: one clear error each.
if "$wick" embed "$model" -i "$sentences" --format xml 2> "$work/err"; then exit 1; fi
grep -q "format must be jsonl or npy" "$work/err"
if "$wick" embed "$model" -i "$sentences" --format npy 2> "$work/err"; then exit 1; fi
grep -q "needs --output FILE" "$work/err"
if "$wick" embed "$model" -i "$sentences" --max-length 1 2> "$work/err"; then exit 1; fi
grep -q "max-length must be >= 2" "$work/err"
if "$wick" embed "$model" -i "$work/none.txt" 2> "$work/err"; then exit 1; fi
grep -q "cannot open input" "$work/err"

# inspect: the real model has no problems; a checkpoint missing a tensor and holding a stray one gives exit 2.
"$wick" inspect "$model" > "$work/inspect.txt"
grep -q "architecture: bert — hidden 384, layers 6, heads 12" "$work/inspect.txt"
grep -q "problems: none" "$work/inspect.txt"
python3 - "$data/models/tiny-qwen2" "$work/broken" <<'PY'
import json, os, shutil, struct, sys
source, target = sys.argv[1:3]
os.makedirs(target)
shutil.copy(f"{source}/config.json", target)
data = open(f"{source}/model.safetensors", "rb").read()
(length,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + length])
body = data[8 + length:]
names = sorted(k for k in header if k != "__metadata__")
dropped = "model.norm.weight"
kept = {k: header[k] for k in names if k != dropped}
kept["stray.weight"] = dict(header[dropped])
new_header = json.dumps(kept).encode()
new_header += b" " * (-len(new_header) % 8)
open(f"{target}/model.safetensors", "wb").write(struct.pack("<Q", len(new_header)) + new_header + body)
PY
status=0
"$wick" inspect "$work/broken" > "$work/inspect-broken.txt" || status=$?
test "$status" -eq 2
grep -q "missing tensor 'model.norm.weight'" "$work/inspect-broken.txt"
grep -q "unused tensor 'stray.weight'" "$work/inspect-broken.txt"
echo "ok"
