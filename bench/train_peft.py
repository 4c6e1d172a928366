"""PEFT peer of `wick bench train`: Qwen2.5-0.5B's shape with random bf16 weights, LoRA on all 7 projections
(PEFT keeps the adapter weights in f32), AdamW on the LoRA parameters, random token batches, causal-LM loss on
every token. Prints the median step time, tokens/s and the peak of torch.cuda.max_memory_allocated."""
import argparse
import json
import statistics
import time

import torch
import transformers
from peft import LoraConfig, get_peft_model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    config = transformers.Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                      max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).to("cuda", torch.bfloat16)
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = [torch.randint(0, 151000, (args.batch, args.tokens), device="cuda") for _ in range(2)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.steps + 2):
        batch = ids[step % 2]
        start = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times[2:])
    tokens_per_s = args.batch * args.tokens / step_s
    peak = torch.cuda.max_memory_allocated() / 2**30
    name = f"train lora r{args.rank} {args.batch}x{args.tokens}"
    print(f"PEFT {name:<28} {step_s * 1e3:9.1f} ms/step {tokens_per_s:10.0f} tokens/s peak {peak:.2f} GiB", flush=True)
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps({"name": name, "ms": step_s * 1e3, "tokens_per_s": tokens_per_s, "peak_gib": peak}) + "\n")


if __name__ == "__main__":
    main()
