"""Peers of `wick bench generate`: Qwen2.5-0.5B's shape with random bf16 weights on the GPU. Greedy decoding of
128 new tokens after a 64-token prompt with transformers' `generate` at batch 1, 8 and 32 (dynamic cache; at
batch 1 also the static cache, uncompiled), and a 2048-token prefill (one forward, last logits only). Tokens/s
count generated tokens of all rows."""
import argparse
import json
import time

import torch
import transformers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefill", type=int, default=2048)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    config = transformers.Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                      max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).to("cuda", torch.bfloat16).eval()
    results = {}
    with torch.no_grad():
        ids = torch.randint(0, 151000, (1, args.prefill), device="cuda")
        for _ in range(2):
            model(input_ids=ids, logits_to_keep=1)
        torch.cuda.synchronize()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            model(input_ids=ids, logits_to_keep=1)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        results["prefill_tokens_per_s"] = args.prefill / min(times)
        print(f"transformers prefill {args.prefill} tokens: {min(times) * 1e3:.2f} ms, "
              f"{results['prefill_tokens_per_s']:.0f} tokens/s", flush=True)
        for batch in [int(b) for b in args.batches.split(",")]:
            prompt = torch.randint(0, 151000, (batch, args.prompt), device="cuda")
            for cache in ("dynamic", "static") if batch == 1 else ("dynamic",):
                kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                              attention_mask=torch.ones_like(prompt), pad_token_id=0)
                if cache == "static":
                    # No torch.compile: its compilation takes minutes; the static cache alone is measured.
                    kwargs["cache_implementation"] = "static"
                    kwargs["disable_compile"] = True
                model.generate(prompt, **{**kwargs, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
                torch.cuda.synchronize()
                start = time.perf_counter()
                model.generate(prompt, **kwargs)
                torch.cuda.synchronize()
                seconds = time.perf_counter() - start
                rate = batch * args.new_tokens / seconds
                results[f"generate_{cache}_batch{batch}_tokens_per_s"] = rate
                print(f"transformers generate ({cache} cache) batch {batch}: {rate:.0f} tokens/s "
                      f"(prefill included)", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            out.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
