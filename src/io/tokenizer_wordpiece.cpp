// WordPiece (BERT): greedy longest-match-first subwords, continuations marked with a prefix ("##").
#include "io/tokenizer_internal.h"

namespace wick::io::detail {
namespace {

class WordPieceModel final : public Model {
 public:
  explicit WordPieceModel(const Node& node)
      : vocab_(node.at("vocab")),
        unk_token_(node.str_or("unk_token", "[UNK]")),
        prefix_(node.str_or("continuing_subword_prefix", "##")) {
    const auto unk = vocab_.find(unk_token_);
    if (!unk) node.at("unk_token").fail("unk token '{}' is not in model.vocab", unk_token_);
    unk_id_ = *unk;
    if (auto limit = node.find("max_input_chars_per_word")) {
      max_chars_ = limit->integer();
      if (max_chars_ < 0) limit->fail("must not be negative, got {}", max_chars_);
    }
  }

  std::string_view type() const override { return "WordPiece"; }
  const Vocab& vocab() const override { return vocab_; }
  std::optional<std::string> unk_token() const override { return unk_token_; }

  // A word that is too long, or that has a piece no vocabulary entry covers, is one unknown token.
  void tokenize(std::string_view word, Encoding& out) const override {
    // Character boundaries, so pieces never cut a character.
    std::vector<size_t> bounds;
    for (size_t pos = 0; pos < word.size(); next_code_point(word, pos)) bounds.push_back(pos);
    bounds.push_back(word.size());
    if (static_cast<int64_t>(bounds.size() - 1) > max_chars_) {
      emit(unk_id_, out);
      return;
    }
    std::vector<int32_t> pieces;
    std::string candidate;
    for (size_t begin = 0; begin + 1 < bounds.size();) {
      size_t end = bounds.size() - 1;
      std::optional<int32_t> id;
      for (; end > begin; --end) {
        candidate.assign(begin > 0 ? prefix_ : std::string());
        candidate.append(word.substr(bounds[begin], bounds[end] - bounds[begin]));
        if ((id = vocab_.find(candidate))) break;
      }
      if (!id) {
        emit(unk_id_, out);
        return;
      }
      pieces.push_back(*id);
      begin = end;
    }
    for (const int32_t id : pieces) emit(id, out);
  }

 private:
  void emit(int32_t id, Encoding& out) const {
    out.ids.push_back(id);
    out.tokens.emplace_back(*vocab_.token(id));
  }

  Vocab vocab_;
  std::string unk_token_;
  int32_t unk_id_ = 0;
  std::string prefix_;
  int64_t max_chars_ = 100;
};

// Joins pieces: a continuation loses its prefix, any other token after the first gets a space before it.
// With cleanup, each token also loses the space before punctuation and English contractions.
class WordPieceDecoder final : public Decoder {
 public:
  explicit WordPieceDecoder(const Node& node)
      : prefix_(node.str_or("prefix", "##")), cleanup_(node.bool_or("cleanup", true)) {}

  std::string decode(const std::vector<std::string_view>& tokens) const override {
    std::string out;
    std::string piece;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string_view token = tokens[i];
      if (i > 0 && token.starts_with(prefix_)) {
        piece.assign(token.substr(prefix_.size()));
      } else {
        piece.clear();
        if (i > 0) piece.push_back(' ');
        piece.append(token);
      }
      if (cleanup_) clean(piece);
      out.append(piece);
    }
    return out;
  }

 private:
  static void replace_all(std::string& text, std::string_view from, std::string_view to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  }

  static void clean(std::string& text) {
    static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
        {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
        {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    for (const auto& [from, to] : kRules) replace_all(text, from, to);
  }

  std::string prefix_;
  bool cleanup_;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece_model(const Node& node) {
  return std::make_unique<WordPieceModel>(node);
}

std::unique_ptr<Decoder> make_wordpiece_decoder(const Node& node) {
  return std::make_unique<WordPieceDecoder>(node);
}

}  // namespace wick::io::detail
