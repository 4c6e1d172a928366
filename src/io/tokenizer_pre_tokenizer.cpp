// Pre-tokenizers: regex Split, ByteLevel (GPT-2 regex + byte-to-character map), BERT's whitespace and
// punctuation split, and sequences of these.
//
// The library compiles its patterns with Oniguruma; PCRE2 in UTF + UCP mode reads the same syntax
// (\p{L}, \p{N}, (?i:...), lookahead) with the same meaning. Character classes follow the Unicode version of
// the system's PCRE2, so letters assigned after it do not match \p{L}.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>

#include "io/tokenizer_internal.h"

namespace wick::io::detail {
namespace {

struct Span {
  size_t begin;
  size_t end;
};

// A compiled pattern; matching is thread-safe.
class Regex {
 public:
  // `where` names the field in errors; null for a built-in pattern.
  Regex(std::string_view pattern, const Node* where) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (code == nullptr) {
      if (where != nullptr) where->fail("invalid regex at offset {}: {}", error_offset, message(error));
      wick::fail("tokenizer", "built-in regex does not compile: {}", message(error));
    }
    code_.reset(code);
    // JIT is an optimisation only: without it (or if it fails) the interpreter gives the same matches.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }

  // Non-overlapping matches from left to right; an empty match right where the previous match ended is
  // skipped, as Oniguruma's iterator does.
  std::vector<Span> find_all(std::string_view text) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
    std::vector<Span> matches;
    size_t pos = 0;
    std::optional<size_t> last_end;
    while (pos <= text.size()) {
      const int rc = match(text, pos, data.get());
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) wick::fail("tokenizer", "regex match failed: {}", message(rc));
      const PCRE2_SIZE* vector = pcre2_get_ovector_pointer(data.get());
      const Span found{vector[0], vector[1]};
      // \K can move a match's start; PCRE2 rejects the forms that would put it before the search position or
      // past the end, and this keeps it that way.
      if (found.begin < pos || found.end < found.begin)
        wick::fail("tokenizer", "regex gave an unordered match");
      if (found.begin == found.end && last_end == found.end) {
        if (pos == text.size()) break;
        next_code_point(text, pos);
        continue;
      }
      matches.push_back(found);
      last_end = found.end;
      pos = found.end;
    }
    return matches;
  }

 private:
  struct Free {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };

  int match(std::string_view text, size_t pos, pcre2_match_data* data) const {
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    int rc = pcre2_match(code_.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, data, nullptr);
    // The JIT's fixed stack can run out on very long inputs; the interpreter keeps its frames on the heap.
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code_.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data,
                       nullptr);
    return rc;
  }

  static std::string message(int error) {
    std::array<PCRE2_UCHAR, 256> buffer{};
    pcre2_get_error_message(error, buffer.data(), buffer.size());
    return reinterpret_cast<const char*>(buffer.data());
  }

  std::unique_ptr<pcre2_code, Free> code_;
};

// How a split treats the pieces its pattern matched (the library's SplitDelimiterBehavior).
enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct Piece {
  Span span;
  bool matched;
};

// The pieces covering the whole word: the matches and the gaps between them.
std::vector<Piece> pieces_of(std::string_view word, const std::vector<Span>& matches) {
  std::vector<Piece> pieces;
  size_t previous = 0;
  for (const Span& m : matches) {
    if (m.begin != previous) pieces.push_back({{previous, m.begin}, false});
    pieces.push_back({m, true});
    previous = m.end;
  }
  if (previous != word.size()) pieces.push_back({{previous, word.size()}, false});
  return pieces;
}

// Applies `behavior` and appends the non-empty words.
void split_word(std::string_view word, const std::vector<Piece>& pieces, Behavior behavior,
                std::vector<std::string>& out) {
  std::vector<Span> kept;
  switch (behavior) {
    case Behavior::removed:
      for (const Piece& p : pieces)
        if (!p.matched) kept.push_back(p.span);
      break;
    case Behavior::isolated:
      for (const Piece& p : pieces) kept.push_back(p.span);
      break;
    case Behavior::contiguous: {
      bool previous_matched = false;
      for (const Piece& p : pieces) {
        if (!kept.empty() && p.matched == previous_matched) {
          kept.back().end = p.span.end;
        } else {
          kept.push_back(p.span);
        }
        previous_matched = p.matched;
      }
      break;
    }
    case Behavior::merged_with_previous: {
      bool previous_matched = false;
      for (const Piece& p : pieces) {
        if (p.matched && !previous_matched && !kept.empty()) {
          kept.back().end = p.span.end;
        } else {
          kept.push_back(p.span);
        }
        previous_matched = p.matched;
      }
      break;
    }
    case Behavior::merged_with_next: {
      bool next_matched = false;
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->matched && !next_matched && !kept.empty()) {
          kept.back().begin = it->span.begin;
        } else {
          kept.push_back(it->span);
        }
        next_matched = it->matched;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Span& s : kept)
    if (s.end > s.begin) out.emplace_back(word.substr(s.begin, s.end - s.begin));
}

Behavior parse_behavior(const Node& node) {
  const std::string name = node.str();
  if (name == "Removed") return Behavior::removed;
  if (name == "Isolated") return Behavior::isolated;
  if (name == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (name == "MergedWithNext") return Behavior::merged_with_next;
  if (name == "Contiguous") return Behavior::contiguous;
  node.fail("split behavior '{}' is not supported (supported: {})", name,
            join({"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"}));
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  explicit SplitPreTokenizer(const Node& node)
      : behavior_(parse_behavior(node.at("behavior"))), invert_(node.bool_or("invert", false)) {
    const Node pattern = node.at("pattern");
    pattern.expect_object();
    if (auto regex = pattern.find("Regex")) {
      regex_.emplace(regex->str(), &*regex);
    } else if (auto literal = pattern.find("String")) {
      literal_ = literal->str();
    } else {
      pattern.fail("expected {{\"Regex\": ...}} or {{\"String\": ...}}");
    }
  }

  void pre_tokenize(std::vector<std::string>& words) const override {
    std::vector<std::string> out;
    for (const std::string& word : words) {
      std::vector<Piece> pieces = pieces_of(word, regex_ ? regex_->find_all(word) : find_literal(word));
      if (invert_)
        for (Piece& p : pieces) p.matched = !p.matched;
      split_word(word, pieces, behavior_, out);
    }
    words = std::move(out);
  }

 private:
  std::vector<Span> find_literal(std::string_view word) const {
    std::vector<Span> matches;
    if (literal_.empty()) return matches;
    for (size_t at = word.find(literal_); at != std::string_view::npos; at = word.find(literal_, at)) {
      matches.push_back({at, at + literal_.size()});
      at += literal_.size();
    }
    return matches;
  }

  Behavior behavior_;
  bool invert_;
  std::optional<Regex> regex_;
  std::string literal_;
};

// GPT-2's word pattern, which ByteLevel applies when use_regex is set.
const Regex& gpt2_regex() {
  static const Regex regex(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                           nullptr);
  return regex;
}

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  explicit ByteLevelPreTokenizer(const Node& node)
      : add_prefix_space_(node.bool_or("add_prefix_space", true)),
        use_regex_(node.bool_or("use_regex", true)) {
    if (use_regex_) gpt2_regex();
  }

  void pre_tokenize(std::vector<std::string>& words) const override {
    std::vector<std::string> split;
    for (std::string& word : words) {
      if (add_prefix_space_ && !word.starts_with(' ')) word.insert(word.begin(), ' ');
      if (use_regex_) {
        split_word(word, pieces_of(word, gpt2_regex().find_all(word)), Behavior::isolated, split);
      } else {
        split.push_back(std::move(word));
      }
    }
    words.clear();
    for (const std::string& word : split) {
      std::string mapped;
      mapped.reserve(word.size() * 2);
      for (const char byte : word) mapped.append(byte_to_char(static_cast<uint8_t>(byte)));
      words.push_back(std::move(mapped));
    }
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

// Splits on whitespace (dropped) and then around every punctuation character (kept as a word of its own).
class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<std::string>& words) const override {
    std::vector<std::string> out;
    for (const std::string& word : words) {
      size_t pos = 0, start = 0;
      const auto flush = [&](size_t end) {
        if (end > start) out.push_back(word.substr(start, end - start));
      };
      while (pos < word.size()) {
        const size_t at = pos;
        const char32_t c = next_code_point(word, pos);
        if (is_white_space(c)) {
          flush(at);
          start = pos;
        } else if (is_bert_punctuation(c)) {
          flush(at);
          out.push_back(word.substr(at, pos - at));
          start = pos;
        }
      }
      flush(word.size());
    }
    words = std::move(out);
  }

 private:
  // ASCII symbols such as $ + < = > ^ ` | ~ count as punctuation too.
  static bool is_bert_punctuation(char32_t c) {
    const bool ascii =
        (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return ascii || is_punctuation(c);
  }
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(const Node& node) {
    const Node list = node.at("pretokenizers");
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_pre_tokenizer(list.index(i))) stages_.push_back(std::move(stage));
    }
  }

  void pre_tokenize(std::vector<std::string>& words) const override {
    for (const auto& stage : stages_) stage->pre_tokenize(words);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Node& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node.at("type").str();
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(node);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(node);
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Sequence") return std::make_unique<SequencePreTokenizer>(node);
  node.at("type").fail("pre-tokenizer '{}' is not supported (supported: {})", type,
                       join({"Split", "ByteLevel", "BertPreTokenizer", "Sequence"}));
}

}  // namespace wick::io::detail
