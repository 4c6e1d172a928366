// The stages of the tokenizer pipeline, each built from its section of tokenizer.json. Shared by the
// tokenizer_*.cpp files only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wick/error.h"
#include "wick/io/tokenizer.h"

namespace wick::io::detail {

// A JSON value with the path that reached it, so every error names the file and the field.
class Node {
 public:
  Node(const nlohmann::json& value, std::string label, std::string path)
      : value_(&value), label_(std::move(label)), path_(std::move(path)) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& label() const { return label_; }
  bool is_null() const { return value_->is_null(); }

  // A required member of an object.
  Node at(std::string_view key) const;
  // A member that may be absent or null.
  std::optional<Node> find(std::string_view key) const;
  // A member, or a null node when absent.
  Node at_or_null(std::string_view key) const;
  Node index(size_t i) const;
  size_t size() const;  // of an array

  std::string str() const;
  bool boolean() const;
  int64_t integer() const;
  // An id: an integer in [0, 2^31).
  int32_t id() const;
  void expect_object() const;
  void expect_array() const;

  bool bool_or(std::string_view key, bool fallback) const;
  std::string str_or(std::string_view key, std::string_view fallback) const;

  // Throws "[tokenizer] <label>: <path>: <message>".
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    wick::fail("tokenizer", "{}: {}: {}", label_, path_, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  const nlohmann::json* value_;
  std::string label_;
  std::string path_;
};

// ---- UTF-8 and Unicode (tokenizer_unicode.cpp) ----

// The offset of the first byte that is not well-formed UTF-8, or npos.
size_t invalid_utf8_offset(std::string_view text);
// Decodes the code point at text[pos] of well-formed UTF-8 and advances pos.
char32_t next_code_point(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t c);
// Bytes to text, each maximal ill-formed subsequence replaced by U+FFFD (as Rust's from_utf8_lossy and
// Python's errors="replace" do).
std::string utf8_lossy(std::string_view bytes);

enum class NormalForm { nfc, nfd, nfkc, nfkd };
std::string normalize_unicode(std::string_view text, NormalForm form);
// Per-character full lowercase mapping (Rust's char::to_lowercase; no context-dependent final sigma).
std::string lowercase(std::string_view text);
bool is_white_space(char32_t c);      // the Unicode White_Space property
bool is_punctuation(char32_t c);      // general category P*
bool is_nonspacing_mark(char32_t c);  // Mn
bool is_mark(char32_t c);             // M*
bool is_other(char32_t c);            // Cc, Cf, Co, Cs
bool is_word_character(char32_t c);   // what \w matches in Unicode-aware regex engines

// ---- pipeline stages ----

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string_view text) const = 0;
};

// Splits words further; every stage maps each word to zero or more words, in order.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<std::string>& words) const = 0;
};

// A bidirectional token <-> id table.
class Vocab {
 public:
  Vocab() = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;
  Vocab(Vocab&&) = default;
  Vocab& operator=(Vocab&&) = default;

  explicit Vocab(const Node& object);
  std::optional<int32_t> find(std::string_view token) const;
  std::optional<std::string_view> token(int32_t id) const;
  int32_t end() const { return end_; }  // one past the largest id
  size_t size() const { return ids_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
  std::unordered_map<int32_t, std::string_view> tokens_;  // views of the keys of ids_
  int32_t end_ = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string_view type() const = 0;
  // Appends the ids and tokens of one pre-tokenized word.
  virtual void tokenize(std::string_view word, Encoding& out) const = 0;
  virtual const Vocab& vocab() const = 0;
  virtual std::optional<std::string> unk_token() const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string decode(const std::vector<std::string_view>& tokens) const = 0;
};

// Adds special tokens to one encoding or a pair; may merge the pair into one. Type ids arrive as 0 (first)
// and 1 (second).
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<Encoding>& encodings, bool add_special_tokens) const = 0;
};

// Each returns nullptr for a null section.
std::unique_ptr<Normalizer> make_normalizer(const Node& node);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Node& node);
std::unique_ptr<PostProcessor> make_post_processor(const Node& node);

std::unique_ptr<Model> make_bpe_model(const Node& node);
std::unique_ptr<Model> make_wordpiece_model(const Node& node);
std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_wordpiece_decoder(const Node& node);

// Byte-level BPE's reversible byte <-> printable character map (GPT-2).
const std::string& byte_to_char(uint8_t byte);  // UTF-8 of the character standing for `byte`
std::optional<uint8_t> char_to_byte(char32_t c);

// "a, b, c" for messages listing what is supported.
std::string join(const std::vector<std::string_view>& names);

}  // namespace wick::io::detail
