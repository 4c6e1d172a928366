#!/usr/bin/env bash
# Fetches the cuDNN frontend's C++ headers (header-only, MIT-licensed, from NVIDIA's PyPI wheel
# nvidia-cudnn-frontend 1.32.0) into .cache/cudnn-frontend/include, where CMake looks for them. With them and
# the CUDA toolkit's cudnn.h the CUDA build gains cuDNN's fused attention; cuDNN itself is loaded at run time
# (libcudnn.so.9), so a machine without it runs the built-in kernels. The wheel is checked against its sha256;
# a re-run with the headers present returns at once. Prints the include folder.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cache/cudnn-frontend
version=1.32.0
wheel=nvidia_cudnn_frontend-$version-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
expected=c6006556017a4d1c914c52a556c71b1267f2d6a0500f742e7b4edef539878df0
if [[ ! -f $target/include/cudnn_frontend.h || $(cat "$target/version" 2>/dev/null) != "$version" ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --dest "$work" "nvidia-cudnn-frontend==$version" >&2
  echo "$expected  $work/$wheel" | sha256sum -c --quiet >&2
  rm -rf "$target" && mkdir -p "$target"
  python3 - "$work/$wheel" "$target" <<'PY'
import os, sys, zipfile
wheel, target = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("include/") and name.endswith(".h"):
            path = os.path.join(target, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(name) as src, open(path, "wb") as dst:
                dst.write(src.read())
PY
  echo "$version" > "$target/version"
fi
echo "$PWD/$target/include"
