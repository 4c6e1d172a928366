"""Trains the byte-level BPE tokenizer of the tiny test decoders (vocabulary 320, the size of
tests/data/models/tiny-qwen2) so that the tiny model folder is complete: `wick train` and `wick generate`
can run on it end to end. Writes tokenizer.json and tokenizer_config.json (with a ChatML chat template)
into the model folder. Needs the `tokenizers` package; run from the repository root:

    python3 tests/models/make_tiny_tokenizer.py tests/data/models/tiny-qwen2
"""
import json
import pathlib
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def corpus(root: pathlib.Path):
    yield from (root / "tests/data/embeddings/sentences.txt").read_text().splitlines()
    yield from (root / "tests/data/train/stories.jsonl").read_text().splitlines()


def main() -> None:
    target = pathlib.Path(sys.argv[1])
    root = pathlib.Path(__file__).resolve().parents[2]
    vocab_size = json.loads((target / "config.json").read_text())["vocab_size"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus(root), trainer)
    assert tokenizer.get_vocab_size() <= vocab_size, tokenizer.get_vocab_size()
    tokenizer.save(str(target / "tokenizer.json"))
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "model_max_length": 128,
        "chat_template": CHAT_TEMPLATE,
    }
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
