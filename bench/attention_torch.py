"""PyTorch peer of the wick attention timing table (tests/cuda/flash_attention_test.cpp, FlashAttentionBench with
WICK_ATTENTION_BENCH=1): torch.nn.functional.scaled_dot_product_attention in bf16 on the same shapes, timed the
same way (CUDA events around each call, warm-up, median, input sets rotated past the L2 size). TFLOP/s: forward
4·b·h·s²·d, halved for causal; forward+backward 3.5× that. With --wick CSV (the wick table), prints both side by
side."""
import argparse
import csv
import math
import statistics

import torch
import torch.nn.functional as F

SHAPES = [
    # name, batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal, backward
    ("fwd 4x14x512x64", 4, 14, 14, 512, 512, 64, True, False),
    ("fwd 1x14x4096x64", 1, 14, 14, 4096, 4096, 64, True, False),
    ("fwd 8x32x1024x128", 8, 32, 32, 1024, 1024, 128, True, False),
    ("fwd 1x32x8192x128", 1, 32, 32, 8192, 8192, 128, True, False),
    ("fwdbwd 4x14x512x64", 4, 14, 14, 512, 512, 64, True, True),
    ("fwdbwd 1x14x4096x64", 1, 14, 14, 4096, 4096, 64, True, True),
    ("fwdbwd 8x32x1024x128", 8, 32, 32, 1024, 1024, 128, True, True),
    ("fwdbwd 1x32x8192x128", 1, 32, 32, 8192, 8192, 128, True, True),
    ("decode kv512", 1, 14, 2, 1, 512, 64, False, False),
    ("decode kv4096", 1, 14, 2, 1, 4096, 64, False, False),
    ("decode kv32768", 1, 14, 2, 1, 32768, 64, False, False),
]


def timed(call, sets, repeats):
    for i in range(3):
        call(i % sets)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for r in range(repeats):
        start.record()
        call(r % sets)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def flops(b, hq, sq, skv, d, causal, backward):
    f = 4.0 * b * hq * sq * skv * d * (0.5 if causal else 1.0)
    return f * 3.5 if backward else f


def run(repeats):
    torch.manual_seed(0)
    rows = []
    for name, b, hq, hkv, sq, skv, d, causal, backward in SHAPES:
        set_bytes = 2.0 * (2 * b * hq * sq + 2 * b * hkv * skv) * d
        sets = int(min(max(math.ceil(200e6 / set_bytes), 1), 8))
        data = []
        for _ in range(sets):
            q = torch.randn(b, hq, sq, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
            k = torch.randn(b, hkv, skv, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
            v = torch.randn(b, hkv, skv, d, device="cuda", dtype=torch.bfloat16, requires_grad=backward)
            g = torch.randn(b, hq, sq, d, device="cuda", dtype=torch.bfloat16)
            data.append((q, k, v, g))
        variants = []
        if hq == hkv:
            variants.append(("torch sdpa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)))
        else:
            variants.append(("torch sdpa gqa", lambda q, k, v: F.scaled_dot_product_attention(
                q, k, v, is_causal=causal, enable_gqa=True)))
            group = hq // hkv
            variants.append(("torch sdpa expanded", lambda q, k, v: F.scaled_dot_product_attention(
                q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=causal)))
        for label, attend in variants:
            def call(i, attend=attend):
                q, k, v, g = data[i]
                out = attend(q, k, v)
                if backward:
                    torch.autograd.grad(out, (q, k, v), g)
            try:
                ms = timed(call, sets, repeats)
            except RuntimeError as e:  # a backend refusing the shape
                print(f"{name}: {label} failed: {e}")
                continue
            tf = flops(b, hq, sq, skv, d, causal, backward) / (ms * 1e-3) / 1e12
            rows.append((name, label, ms, tf))
            print(f"{name:<24} {label:<22} {ms:10.4f} {tf:10.1f}", flush=True)
        del data
        torch.cuda.empty_cache()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--wick", help="the wick table (CSV: case,implementation,ms,tflops)")
    parser.add_argument("--csv", help="write the torch rows here")
    args = parser.parse_args()
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    print(f"{'case':<24} {'implementation':<22} {'ms':>10} {'TFLOP/s':>10}")
    rows = run(args.repeats)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    if args.wick:
        wick = {}
        with open(args.wick) as f:
            for case, impl, ms, tf in csv.reader(f):
                wick.setdefault(case, []).append((impl, float(ms), float(tf)))
        print()
        # The first wick row of a case is the op's default selection; the others force a tile or kernel.
        print("| case | wick default ms | TFLOP/s | wick best variant ms (impl) | torch best ms (impl) | TFLOP/s | "
              "torch time / wick default time |")
        print("|---|---|---|---|---|---|---|")
        for name, *_ in SHAPES:
            mine = wick.get(name, [])
            theirs = [(label, ms, tf) for case, label, ms, tf in rows if case == name]
            if not mine or not theirs:
                continue
            w = mine[0]
            best = min((x for x in mine if x[0] != "cuda"), key=lambda x: x[1])
            t = min(theirs, key=lambda x: x[1])
            print(f"| {name} | {w[1]:.4f} | {w[2]:.1f} | {best[1]:.4f} ({best[0]}) | {t[1]:.4f} ({t[0]}) | "
                  f"{t[2]:.1f} | {t[1] / w[1]:.2f}x |")


if __name__ == "__main__":
    main()
