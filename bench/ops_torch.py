"""PyTorch peer of `wick bench ops --device cuda`: the same cases, names and timing method (CUDA events around
each call including launch, warm-up, median of N, three rotated input sets). Writes one JSON line per case."""
import argparse
import json
import statistics

import torch


def timed(calls, repeats):
    for _ in range(3):
        for call in calls:
            call()
    torch.cuda.synchronize()
    times = []
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for r in range(repeats):
        start.record()
        calls[r % len(calls)]()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def cases():
    dev = "cuda"
    out = []

    def matmul(n, dtype, tf32, label):
        def make():
            a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
            c = torch.empty(n, n, device=dev, dtype=dtype)

            def call():
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.matmul(a, b, out=c)
            return call
        out.append((f"matmul {label} n={n}", make))

    for n in (512, 1024, 2048, 4096):
        matmul(n, torch.bfloat16, False, "bf16")
    for n in (512, 1024, 2048, 4096):
        matmul(n, torch.float32, False, "f32")
    for n in (512, 1024, 2048, 4096):
        matmul(n, torch.float32, True, "tf32")
    for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for rows, cols in ((1024, 1024), (4096, 4096), (8192, 18992)):
            def make(rows=rows, cols=cols, dtype=dtype):
                x = torch.randn(rows, cols, device=dev, dtype=dtype)
                return lambda: torch.softmax(x, dim=-1)
            out.append((f"softmax {name} {rows}x{cols}", make))
        for rows, cols in ((4096, 896), (16384, 896), (4096, 4096)):
            def make(rows=rows, cols=cols, dtype=dtype):
                x = torch.randn(rows, cols, device=dev, dtype=dtype)
                w = torch.randn(cols, device=dev, dtype=dtype)
                return lambda: torch.nn.functional.rms_norm(x, (cols,), w, 1e-6)
            out.append((f"rms_norm {name} {rows}x{cols}", make))

    for tokens, features in ((4096, 896), (4096, 4096)):
        def make_linear(tokens=tokens, features=features):
            x = torch.randn(tokens, features, device=dev, dtype=torch.bfloat16)
            w = torch.randn(features, features, device=dev, dtype=torch.bfloat16)
            return lambda: torch.nn.functional.linear(x, w)
        out.append((f"linear bf16 {tokens}x{features}->{features}", make_linear))

        def make_lora(tokens=tokens, features=features):
            # PEFT's LoRA Linear forward: base(x) + lora_B(lora_A(dropout(x))) * scaling
            x = torch.randn(tokens, features, device=dev, dtype=torch.bfloat16)
            w = torch.randn(features, features, device=dev, dtype=torch.bfloat16)
            a = torch.randn(16, features, device=dev, dtype=torch.bfloat16)
            b = torch.randn(features, 16, device=dev, dtype=torch.bfloat16)
            f = torch.nn.functional.linear
            return lambda: f(x, w) + f(f(x, a), b) * 2.0
        out.append((f"lora_linear bf16 {tokens}x{features}->{features} r16", make_lora))
        out.append((f"lora_linear packed bf16 {tokens}x{features}->{features} r16", make_lora))

    for k, n in ((896, 896), (896, 4864), (4864, 896), (896, 151936)):
        def make_decode(k=k, n=n):
            x = torch.randn(1, k, device=dev, dtype=torch.bfloat16)
            w = torch.randn(n, k, device=dev, dtype=torch.bfloat16)
            return lambda: torch.nn.functional.linear(x, w)
        for impl in ("cuda_gemv", "cublaslt"):
            out.append((f"decode gemm bf16 1x{k}->{n} {impl}", make_decode))

    def copy():
        n = 64 << 20
        src = torch.randn(n, device=dev)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)
    out.append(("device copy 256MiB", copy))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    with open(args.json, "w") as f:
        for name, make in cases():
            calls = [make() for _ in range(3)]
            ms = timed(calls, args.repeats)
            print(f"{name:<34} {ms:>10.4f} ms", flush=True)
            f.write(json.dumps({"name": name, "ms": ms}) + "\n")
            del calls
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
