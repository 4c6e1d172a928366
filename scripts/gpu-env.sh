# Sourced by the gpu-*.sh scripts on the GPU machine: the runtime libraries a carried build needs there — the
# build's own (fmt, utf8proc in $BUILD/lib), the CUDA toolkit's, and cuDNN 9 from PyTorch's Python wheel
# (nvidia-cudnn), which cuDNN attention loads at run time.
cudnn_lib=$(python3 -c 'import os, nvidia.cudnn as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/${BUILD:-build-cuda}/lib:/usr/local/cuda/lib64${cudnn_lib:+:$cudnn_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
