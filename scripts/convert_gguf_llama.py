#!/usr/bin/env python3
"""Converts a llama-architecture GGUF file (llama.cpp's format) into a Hugging Face model folder:

    python3 scripts/convert_gguf_llama.py MODEL.gguf OUTDIR

OUTDIR gets model.safetensors (every tensor dequantized to float32, under transformers' LlamaForCausalLM
names), config.json, generation_config.json, tokenizer.json (byte-level BPE rebuilt with the `tokenizers`
library from the GGUF vocabulary, merges and pre-tokenizer) and tokenizer_config.json (special tokens, chat
template). The same input always gives byte-identical files.

Tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, dequantized by the `gguf` package's own routines. llama.cpp
stores the q and k projections with their rows permuted for its interleaved RoPE; they are permuted back to
the Hugging Face (rotate-half) layout here. Needs: gguf, numpy, pyyaml, safetensors, tokenizers.
"""
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

SUPPORTED_TYPES = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16,
                   GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1}

# llama.cpp's per-layer tensor names and transformers' names for them.
LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}

# GGUF token types (llama.cpp's llama_token_type).
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4


def fail(message):
    sys.exit(f"convert_gguf_llama: {message}")


class Metadata:
    def __init__(self, reader, path):
        self.reader, self.path = reader, path

    def get(self, key, default=None):
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def require(self, key):
        value = self.get(key)
        if value is None:
            fail(f"{self.path} has no '{key}'")
        return value


def shortest_float32(value):
    """The shortest decimal that reads back as the same float32 (GGUF stores 1e-5 as 9.99999974738e-06)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def unpermute(weight, heads):
    """Inverse of llama.cpp's convert_hf_to_gguf permute() of the q/k rows (each head's rotary pairs
    interleaved back into halves)."""
    rows = weight.shape[0]
    if rows % (2 * heads):
        fail(f"cannot undo the rotary permutation of {rows} rows over {heads} heads")
    return np.ascontiguousarray(
        weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape))


def convert_tensors(reader, meta, heads, kv_heads):
    tensors = {}
    for t in reader.tensors:
        if t.tensor_type not in SUPPORTED_TYPES:
            fail(f"tensor {t.name} has type {t.tensor_type.name}; supported: "
                 + ", ".join(sorted(q.name for q in SUPPORTED_TYPES)))
        value = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF lists dimensions innermost first
        if value.shape != shape:
            value = value.reshape(shape)
        if t.name in GLOBAL_NAMES:
            name = GLOBAL_NAMES[t.name]
        else:
            parts = t.name.split(".")
            known = len(parts) == 4 and parts[0] == "blk" and parts[2] in LAYER_NAMES
            if not known or parts[3] not in ("weight", "bias"):
                fail(f"tensor {t.name} has no llama equivalent (rope_freqs and other extras are not supported)")
            if parts[2] == "attn_q":
                value = unpermute(value, heads)
            elif parts[2] == "attn_k":
                value = unpermute(value, kv_heads)
            name = f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}.{parts[3]}"
        if name in tensors:
            fail(f"{meta.path} holds {name} twice")
        tensors[name] = np.ascontiguousarray(value, dtype=np.float32)
    return tensors


def pre_tokenizer_for(pre):
    """The tokenizers pre-tokenizer of llama.cpp's `tokenizer.ggml.pre` name."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    if pre == "gpt-2":
        return byte_level
    if pre == "smollm":
        # SmolLM's tokenizer.json has Digits(individual_digits=True) then ByteLevel; the Split below isolates
        # every \p{N} character, which is what Digits(individual_digits=True) does (Rust's char::is_numeric
        # is the Nd, Nl and No categories), in the form wick's tokenizer reads.
        return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"), byte_level])
    fail(f"pre-tokenizer '{pre}' is not supported (supported: smollm, gpt-2)")


def build_tokenizer(meta):
    if meta.require("tokenizer.ggml.model") != "gpt2":
        fail("only byte-level BPE tokenizers (tokenizer.ggml.model 'gpt2') are supported")
    tokens = list(meta.require("tokenizer.ggml.tokens"))
    types = list(meta.get("tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens)))
    merges = []
    for merge in meta.require("tokenizer.ggml.merges"):
        pair = merge.split(" ")
        if len(pair) != 2:
            fail(f"merge {merge!r} is not two tokens")
        merges.append((pair[0], pair[1]))
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        fail("the vocabulary has duplicate tokens")
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizer_for(meta.get("tokenizer.ggml.pre", "gpt-2"))
    byte_level = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    if meta.get("tokenizer.ggml.add_bos_token", False):
        bos = tokens[int(meta.require("tokenizer.ggml.bos_token_id"))]
        with_bos = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                 special_tokens=[(bos, vocab[bos])])
        tokenizer.post_processor = processors.Sequence([byte_level, with_bos])
    else:
        tokenizer.post_processor = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    added = [AddedToken(token, special=(kind == TOKEN_CONTROL), normalized=False)
             for token, kind in zip(tokens, types) if kind in (TOKEN_CONTROL, TOKEN_USER_DEFINED)]
    tokenizer.add_tokens(added)
    return tokenizer, tokens


def main(gguf_path, out_dir):
    reader = GGUFReader(gguf_path)
    meta = Metadata(reader, gguf_path)
    arch = meta.require("general.architecture")
    if arch != "llama":
        fail(f"{gguf_path} is a '{arch}' model; only 'llama' is supported")
    rope_scaling = meta.get("llama.rope.scaling.type", "none")
    if rope_scaling not in ("none", None):
        fail(f"rope scaling '{rope_scaling}' is not supported")

    hidden = int(meta.require("llama.embedding_length"))
    heads = int(meta.require("llama.attention.head_count"))
    kv_heads = int(meta.get("llama.attention.head_count_kv", heads))
    head_dim = int(meta.get("llama.attention.key_length", hidden // heads))
    if int(meta.get("llama.rope.dimension_count", head_dim)) != head_dim:
        fail("partial rotary embeddings are not supported")

    tensors = convert_tensors(reader, meta, heads, kv_heads)
    embed = tensors.get("model.embed_tokens.weight")
    if embed is None:
        fail(f"{gguf_path} has no token_embd.weight")
    tokenizer, tokens = build_tokenizer(meta)
    if len(tokens) > embed.shape[0]:
        fail(f"{len(tokens)} tokens but only {embed.shape[0]} embedding rows")

    def token(key):
        i = meta.get(key)
        return None if i is None else int(i)

    bos, eos, pad, unk = (token(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding", "unknown"))
    context = int(meta.require("llama.context_length"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(embed.shape[0]),
        "hidden_size": hidden,
        "intermediate_size": int(meta.require("llama.feed_forward_length")),
        "num_hidden_layers": int(meta.require("llama.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": context,
        "rms_norm_eps": shortest_float32(meta.require("llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": shortest_float32(meta.get("llama.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "attention_bias": any(k.endswith("_proj.bias") and ".self_attn." in k for k in tensors),
        "attention_dropout": 0.0,
        "mlp_bias": any(k.endswith("_proj.bias") and ".mlp." in k for k in tensors),
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": "float32",
    }
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config[k] is not None}

    def token_text(i):
        return None if i is None else tokens[i]

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token_text(bos),
        "eos_token": token_text(eos),
        "pad_token": token_text(pad),
        "unk_token": token_text(unk),
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": context,
    }
    tokenizer_config = {k: v for k, v in tokenizer_config.items() if v is not None}
    template = meta.get("tokenizer.chat_template")
    if template is not None:
        tokenizer_config["chat_template"] = template

    os.makedirs(out_dir, exist_ok=True)
    weights = os.path.join(out_dir, "model.safetensors")
    save_file(tensors, weights, metadata={"format": "pt"})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(weights, 0o666 & ~umask)  # save_file creates it readable by the owner only
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    for name, value in (("config.json", config), ("generation_config.json", generation),
                        ("tokenizer_config.json", tokenizer_config)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, ensure_ascii=False)
            f.write("\n")
    parameters = sum(v.size for v in tensors.values())
    print(f"{gguf_path}: {len(tensors)} tensors, {parameters:,} parameters, {len(tokens)} tokens -> {out_dir}",
          file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
