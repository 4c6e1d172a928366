#!/usr/bin/env python3
"""Writes tests/data/tokenizers/golden.json: the ids, tokens, type ids and decoded text that the Hugging Face
`tokenizers` library gives for a varied corpus, for each tokenizer under tests/data/tokenizers/ and for
variants of them that exercise other pipeline components (GPT-2 and Llama-3 style pre-tokenizers, other
normalizers, split behaviours, post-processors, added-token flags). tests/io/tokenizer_test.cpp compares
wick's results with these exactly.

A variant is the base tokenizer.json with an RFC 6902 JSON patch applied (and, with "merges_as_strings", the
merges rewritten in the older "left right" form); the C++ test applies the same edits.

Rerun after changing the corpus, the variants or the data files:

    pip install tokenizers
    python3 tests/io/make_tokenizer_golden.py
"""

import copy
import json
import pathlib

import tokenizers

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "tokenizers"

CORPUS = [
    "",
    " ",
    "\n\n",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n\n\nclass Foo:\n\tdef bar(self):\n\t\tpass  # done\n",
    "a  b   c    d\n\n\n\te\t\tf \r\n g   \n  ",
    "   leading and trailing   ",
    "Café naïve résumé São Paulo Ærøskøbing façade",
    "e\u0301 versus \u00e9, A\u030a versus \u00c5",
    "İstanbul ΣΊΣΥΦΟΣ Straße ǅemal ﬁne",
    "你好，世界！今天天气很好。",
    "こんにちは世界、カタカナとひらがな",
    "안녕하세요 세계",
    "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 😀😀😀 🫠",
    "3.14159 1,000,000 12345678901234567890 ٣٤٥ ½ ²",
    "1234567 12 123 1234 v1.2.3",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nLet me see.\n</think>\n\nThe answer is 42.<|endoftext|>",
    "[CLS] hello [SEP] world [MASK] [UNK][PAD]",
    "I'm don't they'll we've she'd It's DON'T 'S 'Ll",
    "Hello!!! What?! (yes) [no] {maybe} <tag> a-b_c/d\\e $5 + 3 = ~8 ^_^ `x` |y|",
    "a\u0000b\u200bc\u00ad d\ufeff e\x0b f\x85 g\u2028 h\x7f i\ue000 j",
    "a\u00a0b\u3000c\u2009d\u202fe",
    "\u0301abc",
    "a" * 150,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Привет мир! مرحبا بالعالم שלום עולם नमस्ते दुनिया ไทย",
    "https://example.com/path?q=1&r=2 user@example.org",
    '{"key": [1, 2, {"a": null}], "b": "c"}',
    "word words sword word_ wörd word. x\u2126y \u03a9 a <mask> b [rs]   z",
    "  <mask>[rs]  <mask>",
    "unaffable running jumped",
]

PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("", "the first is empty"),
    ("句子一", "Sentence two, with [SEP] inside."),
]

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def replace(path, value):
    return {"op": "replace", "path": path, "value": value}


def split(pattern, behavior, invert=False, kind="Regex"):
    return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}


def byte_level(add_prefix_space, use_regex):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True,
            "use_regex": use_regex}


def added(content, **flags):
    token = {"id": 0, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False}
    token.update(flags)
    return {"op": "add", "path": "/added_tokens/-", "value": token}


# (name, base folder, patch, merges_as_strings)
VARIANTS = [
    ("qwen3", "qwen3", [], False),
    ("gpt2-style", "qwen3", [
        replace("/normalizer", None),
        replace("/pre_tokenizer", byte_level(False, True)),
        replace("/post_processor", byte_level(False, True)),
    ], True),
    ("gpt2-prefix-space", "qwen3", [
        replace("/normalizer", None),
        replace("/pre_tokenizer", byte_level(True, True)),
    ], False),
    ("llama3-style", "qwen3", [
        replace("/normalizer", None),
        replace("/model/ignore_merges", True),
        replace("/pre_tokenizer", {"type": "Sequence", "pretokenizers": [
            split(LLAMA3_PATTERN, "Isolated"), byte_level(False, False)]}),
        replace("/post_processor", {"type": "Sequence", "processors": [
            byte_level(True, False),
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643],
                                                  "tokens": ["<|endoftext|>"]}}}]}),
    ], False),
    ("qwen3-added-flags", "qwen3", [
        added("<mask>", lstrip=True, special=True),
        added("\u2126", normalized=True),
        added("word", single_word=True),
        added("[rs]", rstrip=True),
    ], False),
    ("minilm", "all-minilm-l6-v2", [], False),
    ("minilm-bert-processing", "all-minilm-l6-v2", [
        replace("/post_processor", {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}),
        replace("/decoder", {"type": "WordPiece", "prefix": "##", "cleanup": False}),
    ], False),
    ("minilm-cased", "all-minilm-l6-v2", [
        replace("/normalizer", {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False,
                                "strip_accents": None, "lowercase": False}),
        replace("/decoder", None),
    ], False),
    ("minilm-nfkd-strip", "all-minilm-l6-v2", [
        replace("/normalizer", {"type": "Sequence", "normalizers": [
            {"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]}),
    ], False),
    ("minilm-nfkc-nfd", "all-minilm-l6-v2", [
        replace("/normalizer", {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "NFD"}]}),
        replace("/post_processor", None),
    ], False),
    ("minilm-split-behaviors", "all-minilm-l6-v2", [
        replace("/pre_tokenizer", {"type": "Sequence", "pretokenizers": [
            split(" ", "Removed", kind="String"),
            split(r"\p{P}", "MergedWithPrevious"),
            split(r"\d", "Contiguous"),
            split("-", "MergedWithNext", kind="String"),
            split(r"[aeiou]", "Isolated", invert=True),
        ]}),
    ], False),
    ("minilm-no-pre-tokenizer", "all-minilm-l6-v2", [
        replace("/pre_tokenizer", None),
    ], False),
]


def apply_patch(document, patch):
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op["op"] == "replace":
            parent[int(last) if isinstance(parent, list) else last] = op["value"]
        elif op["op"] == "add" and last == "-":
            parent.append(op["value"])
        else:
            raise ValueError(f"unsupported patch op {op}")
    return document


def load_variant(base, patch, merges_as_strings):
    document = json.loads((DATA / base / "tokenizer.json").read_text(encoding="utf-8"))
    document = apply_patch(copy.deepcopy(document), patch)
    if merges_as_strings:
        document["model"]["merges"] = [f"{a} {b}" for a, b in document["model"]["merges"]]
    tokenizer = tokenizers.Tokenizer.from_str(json.dumps(document))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def case(tokenizer, text, pair, add_special_tokens):
    encoding = tokenizer.encode(text, pair, add_special_tokens=add_special_tokens)
    assert all(m == 1 for m in encoding.attention_mask)
    result = {"text": text}
    if pair is not None:
        result["pair"] = pair
    result.update({
        "add_special_tokens": add_special_tokens,
        "ids": encoding.ids,
        "tokens": encoding.tokens,
        "type_ids": encoding.type_ids,
        "decoded": tokenizer.decode(encoding.ids, skip_special_tokens=False),
        "decoded_skip_special": tokenizer.decode(encoding.ids, skip_special_tokens=True),
    })
    return result


def main():
    variants = []
    for name, base, patch, merges_as_strings in VARIANTS:
        tokenizer = load_variant(base, patch, merges_as_strings)
        cases = [case(tokenizer, text, None, True) for text in CORPUS]
        cases += [case(tokenizer, text, None, False) for text in CORPUS[:8]]
        cases += [case(tokenizer, a, b, special) for a, b in PAIRS for special in (True, False)]
        variants.append({"name": name, "base": base, "patch": patch, "merges_as_strings": merges_as_strings,
                         "cases": cases})
    golden = {
        "generator": "tests/io/make_tokenizer_golden.py",
        "tokenizers_version": tokenizers.__version__,
        "variants": variants,
    }
    out = DATA / "golden.json"
    out.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    count = sum(len(v["cases"]) for v in variants)
    print(f"wrote {out} ({count} cases, tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
