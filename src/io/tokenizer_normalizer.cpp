// Normalizers: Unicode normal forms, lowercasing, accent stripping, BERT's cleanup, and sequences of these.
#include "io/tokenizer_internal.h"

namespace wick::io::detail {
namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string_view text) const override { return normalize_unicode(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return lowercase(text); }
};

// Drops the characters `drop` selects; strips accents only from text decomposed first (NFD).
std::string drop_marks(std::string_view text, bool (*drop)(char32_t)) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = next_code_point(text, pos);
    if (!drop(c)) out.append(text.substr(start, pos - start));
  }
  return out;
}

// Drops every mark (Mn, Mc, Me), unlike BERT's normalizer, which drops nonspacing marks only.
class StripAccentsNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return drop_marks(text, is_mark); }
};

// The CJK Unified Ideograph blocks that BERT surrounds with spaces, so each becomes a word of its own.
bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  explicit BertNormalizer(const Node& node)
      : clean_text_(node.bool_or("clean_text", true)),
        handle_chinese_chars_(node.bool_or("handle_chinese_chars", true)),
        lowercase_(node.bool_or("lowercase", true)) {
    // A null strip_accents follows lowercase: uncased BERT models strip accents.
    strip_accents_ = node.bool_or("strip_accents", lowercase_);
  }

  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      const char32_t c = next_code_point(text, pos);
      if (clean_text_) {
        const bool kept_control = c == '\t' || c == '\n' || c == '\r';
        if (c == 0 || c == 0xFFFD || (!kept_control && is_other(c))) continue;
        if (kept_control || is_white_space(c)) {
          out.push_back(' ');
          continue;
        }
      }
      if (handle_chinese_chars_ && is_cjk_ideograph(c)) {
        out.push_back(' ');
        out.append(text.substr(start, pos - start));
        out.push_back(' ');
        continue;
      }
      out.append(text.substr(start, pos - start));
    }
    if (strip_accents_) out = drop_marks(normalize_unicode(out, NormalForm::nfd), is_nonspacing_mark);
    if (lowercase_) out = lowercase(out);
    return out;
  }

 private:
  bool clean_text_;
  bool handle_chinese_chars_;
  bool lowercase_;
  bool strip_accents_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(const Node& node) {
    const Node list = node.at("normalizers");
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_normalizer(list.index(i))) stages_.push_back(std::move(stage));
    }
  }

  std::string normalize(std::string_view text) const override {
    std::string out(text);
    for (const auto& stage : stages_) out = stage->normalize(out);
    return out;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Node& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node.at("type").str();
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::nfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::nfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::nfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::nfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "BertNormalizer") return std::make_unique<BertNormalizer>(node);
  if (type == "Sequence") return std::make_unique<SequenceNormalizer>(node);
  node.at("type").fail(
      "normalizer '{}' is not supported (supported: {})", type,
      join({"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "BertNormalizer", "Sequence"}));
}

}  // namespace wick::io::detail
