"""Makes the tiny random-weight reference models and their golden outputs that the model tests read.

Runs where PyTorch and transformers are installed (the GPU machine has them; a CPU is enough):
    python3 tests/models/make_golden.py OUTPUT_DIR
and writes OUTPUT_DIR/<model>/{config.json, model.safetensors, golden.safetensors}. Copy them to
tests/data/models/. Each golden.safetensors holds the inputs and the reference outputs computed in float32 by
transformers (logits for decoders; last hidden states and mean-pooled, L2-normalised embeddings for BERT), plus
greedy continuations from `generate` for the decoders.
"""
import os
import sys

import torch
import transformers
from safetensors.torch import save_file


def decoder_golden(model, out_dir, vocab):
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (2, 9), generator=gen)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        prompt = ids[:1, :5]
        greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=32,
                                do_sample=False, min_new_tokens=32, pad_token_id=0)
    save_file({"input_ids": ids.clone().contiguous(), "logits": logits.clone().contiguous(),
               "greedy_prompt": prompt.clone().contiguous(), "greedy_ids": greedy.clone().contiguous()},
              os.path.join(out_dir, "golden.safetensors"))


def bert_golden(model, out_dir, vocab):
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(5, vocab, (3, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0   # padded sequences
    mask[2, 4:] = 0
    ids = ids * mask  # pad id 0
    types = torch.zeros_like(ids)
    types[0, 6:] = 1
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state.float()
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
    save_file({"input_ids": ids.clone().contiguous(), "attention_mask": mask.clone().contiguous(),
               "token_type_ids": types.clone().contiguous(), "last_hidden_state": hidden.clone().contiguous(),
               "cls": hidden[:, 0].clone().contiguous(), "embeddings": embeddings.clone().contiguous()},
              os.path.join(out_dir, "golden.safetensors"))


def main(root):
    torch.manual_seed(0)
    common = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  initializer_range=0.2)
    models = {
        "tiny-qwen2": (transformers.Qwen2Config(vocab_size=320, num_key_value_heads=2, tie_word_embeddings=True,
                                                rope_theta=1000000.0, rms_norm_eps=1e-6,
                                                max_position_embeddings=128, **common), "decoder"),
        "tiny-llama": (transformers.LlamaConfig(vocab_size=288, num_key_value_heads=1, tie_word_embeddings=False,
                                                rope_theta=500000.0, rms_norm_eps=1e-5,
                                                max_position_embeddings=128, **common), "decoder"),
        "tiny-bert": (transformers.BertConfig(vocab_size=300, max_position_embeddings=64, type_vocab_size=2,
                                              **common), "bert"),
    }
    for name, (config, kind) in models.items():
        out_dir = os.path.join(root, name)
        os.makedirs(out_dir, exist_ok=True)
        if kind == "decoder":
            model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32).eval()
        else:
            model = transformers.BertModel(config).eval()
        model.save_pretrained(out_dir, safe_serialization=True)
        (decoder_golden if kind == "decoder" else bert_golden)(model, out_dir, config.vocab_size)
        print(name, "written to", out_dir, "transformers", transformers.__version__)


if __name__ == "__main__":
    main(sys.argv[1])
