// Hugging Face tokenizers read from tokenizer.json (+ tokenizer_config.json): byte-level BPE as in Qwen2,
// GPT-2 and Llama-3, and WordPiece as in BERT and MiniLM. For the same files, encode() gives the ids that the
// `tokenizers` library gives and decode() the same text.
//
// The pipeline, in the library's order: the input is first split on the added tokens (longest match first),
// which map straight to their ids; the rest is normalized, pre-tokenized into words, each word is tokenized
// by the model (BPE merges or WordPiece), and the post-processor adds the template's special tokens.
// Truncation and padding are the caller's job: the `truncation` and `padding` sections of tokenizer.json are
// ignored.
//
// Every problem with a file or an argument raises one wick::Error whose message starts with "[tokenizer]" and
// names the file and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wick::io {

// The result of encoding one text or a pair of texts; every vector has one entry per token.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;      // the vocabulary string of each id (byte-level characters for BPE)
  std::vector<int32_t> type_ids;        // segment ids: 0 for the first text, 1 for the second (as templated)
  std::vector<int32_t> attention_mask;  // all ones: nothing is padded here

  size_t size() const { return ids.size(); }
};

class StreamDecoder;

// Loaded once, immutable after: copies share the tables, and every method may be called from many threads.
class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model directory holding one; tokenizer_config.json beside it is read
  // too when present.
  static Tokenizer from_file(const std::filesystem::path& path);
  // The same from the files' contents; `config_json` may be empty. `label` names the source in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             std::string_view label = "tokenizer.json");

  // `text` must be valid UTF-8. add_special_tokens applies the post-processor's template ([CLS] ... [SEP]);
  // special tokens written in the text are always recognised.
  Encoding encode(std::string_view text, bool add_special_tokens = true) const;
  // Two texts as one input (BERT pairs): type_ids are 0 for the first and 1 for the second.
  Encoding encode_pair(std::string_view first, std::string_view second, bool add_special_tokens = true) const;

  // Invalid UTF-8 produced by a byte-level model (a character cut between tokens) becomes U+FFFD, as in the
  // library. An id with no token raises an error.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // Incremental decoding for generation: see StreamDecoder.
  StreamDecoder decode_stream(bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;  // added tokens first, then the model's
  std::optional<std::string> id_to_token(int32_t id) const;
  // One past the largest id of the model vocabulary and the added tokens (the embedding rows a model needs
  // at least).
  int32_t vocab_size() const;
  // Whether `id` is an added token marked special (skipped by decode with skip_special_tokens).
  bool is_special(int32_t id) const;
  std::string_view model_type() const;  // "BPE" or "WordPiece"

  // From tokenizer_config.json (bos_token, eos_token, pad_token, unk_token); the unknown token falls back to
  // the model's unk_token. Empty when not set.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  // tokenizer_config.json's model_max_length; empty when absent or the "unlimited" placeholder (1e30).
  std::optional<int64_t> model_max_length() const;
  // tokenizer_config.json's chat_template (Jinja source, not interpreted here); empty when absent.
  const std::string& chat_template() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Fed one id at a time, returns only text that is complete: a byte-level model splits one character (CJK,
// emoji) over several tokens, and those bytes are held back until the character is whole. The pieces returned
// by step() and then flush() concatenate to decode() of all the ids. Keeps the tokenizer alive.
class StreamDecoder {
 public:
  std::string step(int32_t id);
  // Whatever is still held back (an unfinished character decodes as U+FFFD); the decoder starts over.
  std::string flush();

 private:
  friend class Tokenizer;
  StreamDecoder(Tokenizer tokenizer, bool skip_special_tokens)
      : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  // The ids of the text returned last (context: WordPiece must know a token is not the first to put a space
  // before it), then the ids not returned yet.
  std::vector<int32_t> ids_;
  size_t context_size_ = 0;
  std::string context_text_;  // decode of ids_[0, context_size_)
};

}  // namespace wick::io
