"""Joins wick's and PyTorch's op timings (JSON lines with the same case names) into one markdown table:
both medians, the ratio (PyTorch time / wick time: above 1 means wick is faster), and wick's share of the
measured ceilings (device copy bandwidth for bandwidth-bound ops, the best measured bf16 GEMM rate for GEMMs)."""
import json
import sys


def load(path):
    with open(path) as f:
        return {row["name"]: row for row in map(json.loads, f)}


def main(wick_path, torch_path):
    wick, torch = load(wick_path), load(torch_path)
    copy = wick.get("device copy 256MiB")
    copy_bw = copy["bytes"] / copy["ms"] / 1e6 if copy else None
    peak = max((r["flops"] / r["ms"] / 1e9 for r in wick.values() if r["flops"] > 0 and "bf16" in r["name"]),
               default=None)
    print(f"measured ceilings: device copy {copy_bw:.0f} GB/s, best bf16 GEMM {peak:.0f} TFLOP/s\n")
    print("| case | wick (ms) | PyTorch (ms) | PyTorch/wick | wick rate | % of ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in wick.items():
        peer = torch.get(name)
        ms = row["ms"]
        if row["flops"] > 0:
            rate = row["flops"] / ms / 1e9
            rate_text, share = f"{rate:.0f} TFLOP/s", f"{100 * rate / peak:.0f}%"
        else:
            bw = row["bytes"] / ms / 1e6
            rate_text, share = f"{bw:.0f} GB/s", f"{100 * bw / copy_bw:.0f}%"
        peer_ms = f"{peer['ms']:.4f}" if peer else "-"
        ratio = f"{peer['ms'] / ms:.2f}" if peer else "-"
        print(f"| {name} | {ms:.4f} | {peer_ms} | {ratio} | {rate_text} | {share} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
