"""PyTorch peer of `wick bench embed`: a BertModel with all-MiniLM-L6-v2's shape and random weights in the given
dtype, mean pooling over the attention mask and L2 normalisation (what sentence-transformers runs for MiniLM),
timed with CUDA events per call on token ids made in advance: batch 1 × 16 tokens, 100 docs × 32, 1000 × 128."""
import argparse
import json
import statistics

import torch
import transformers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dtype", default="f16")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    dtype = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    config = transformers.BertConfig(vocab_size=30522, hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                                     num_attention_heads=12, max_position_embeddings=512)
    model = transformers.BertModel(config, add_pooling_layer=False).to("cuda", dtype).eval()

    def embed(ids, mask):
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    with open(args.json, "w") as out, torch.no_grad():
        for docs, tokens in ((1, 16), (100, 32), (1000, 128)):
            sets = [(torch.randint(1000, 30000, (docs, tokens), device="cuda"),
                     torch.ones(docs, tokens, dtype=torch.long, device="cuda")) for _ in range(3)]
            for _ in range(3):
                for ids, mask in sets:
                    embed(ids, mask)
            torch.cuda.synchronize()
            times = []
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for r in range(args.repeats):
                ids, mask = sets[r % 3]
                start.record()
                embed(ids, mask)
                stop.record()
                stop.synchronize()
                times.append(start.elapsed_time(stop))
            ms = statistics.median(times)
            name = f"embed {docs} docs x {tokens} tokens"
            print(f"{name:<30} {ms:>10.4f} ms {docs / ms * 1e3:>12.0f} docs/s", flush=True)
            out.write(json.dumps({"name": name, "ms": ms}) + "\n")


if __name__ == "__main__":
    main()
