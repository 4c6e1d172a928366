// Byte-pair encoding: the model (vocabulary + ranked merges) and the byte-level character map and decoder
// that GPT-2-style tokenizers pair it with.
#include <array>
#include <queue>

#include "io/tokenizer_internal.h"

namespace wick::io::detail {
namespace {

// GPT-2's map: printable Latin-1 bytes stand for themselves, the other 68 bytes take the code points from 256
// on, in byte order, so every byte string becomes printable text without spaces or control characters.
struct ByteMap {
  std::array<std::string, 256> to_char;
  std::array<int16_t, 324> to_byte;  // indexed by code point; -1 where no byte maps

  ByteMap() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(to_char[b], c);
      to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

class BpeModel final : public Model {
 public:
  explicit BpeModel(const Node& node) : vocab_(node.at("vocab")) {
    if (auto unk = node.find("unk_token")) {
      unk_token_ = unk->str();
      unk_id_ = vocab_.find(*unk_token_);
      if (!unk_id_) unk->fail("unk token '{}' is not in model.vocab", *unk_token_);
    }
    fuse_unk_ = node.bool_or("fuse_unk", false);
    ignore_merges_ = node.bool_or("ignore_merges", false);
    if (node.bool_or("byte_fallback", false)) node.at("byte_fallback").fail("byte_fallback is not supported");
    for (const std::string_view key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (!node.str_or(key, "").empty()) node.at(key).fail("a non-empty affix is not supported for BPE");
    }
    if (auto dropout = node.find("dropout")) {
      if (!dropout->json().is_number() || dropout->json().get<double>() != 0.0)
        dropout->fail("BPE dropout is not supported (expected null or 0)");
    }
    read_merges(node.at("merges"));
  }

  std::string_view type() const override { return "BPE"; }
  const Vocab& vocab() const override { return vocab_; }
  std::optional<std::string> unk_token() const override { return unk_token_; }

  void tokenize(std::string_view word, Encoding& out) const override {
    if (ignore_merges_) {
      if (auto id = vocab_.find(word)) {
        emit(*id, out);
        return;
      }
    }
    std::vector<Symbol> symbols = initial_symbols(word);
    merge(symbols);
    for (int32_t i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) emit(symbols[i].id, out);
  }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Merge {
    uint32_t rank;
    int32_t merged;
  };
  // A candidate merge of the symbol at `pos` with the one after it.
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t merged;
    // The lowest rank first, the leftmost among equal ranks.
    bool operator<(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };

  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  void read_merges(const Node& merges) {
    merges.expect_array();
    merges_.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const Node entry = merges.index(rank);
      std::string left, right;
      if (entry.json().is_string()) {
        // The older "left right" form: exactly one space.
        const std::string line = entry.str();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
          entry.fail("expected two tokens separated by one space, got '{}'", line);
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else {
        entry.expect_array();
        if (entry.size() != 2) entry.fail("expected a pair of tokens, got {} entries", entry.size());
        left = entry.index(0).str();
        right = entry.index(1).str();
      }
      const auto left_id = vocab_.find(left), right_id = vocab_.find(right),
                 merged_id = vocab_.find(left + right);
      if (!left_id || !right_id || !merged_id) {
        const std::string& missing = !left_id ? left : !right_id ? right : left + right;
        entry.fail("token '{}' is not in model.vocab", missing);
      }
      // A pair listed twice keeps its last rank, as in the library.
      merges_[key(*left_id, *right_id)] = Merge{static_cast<uint32_t>(rank), *merged_id};
    }
  }

  std::optional<Merge> find_merge(int32_t left, int32_t right) const {
    const auto it = merges_.find(key(left, right));
    if (it == merges_.end()) return std::nullopt;
    return it->second;
  }

  // One symbol per character; characters missing from the vocabulary become the unknown token (consecutive
  // ones fused into one if fuse_unk) or are dropped when there is none.
  std::vector<Symbol> initial_symbols(std::string_view word) const {
    std::vector<Symbol> symbols;
    size_t pos = 0;
    bool previous_unknown = false;
    while (pos < word.size()) {
      const size_t start = pos;
      next_code_point(word, pos);
      std::optional<int32_t> id = vocab_.find(word.substr(start, pos - start));
      const bool unknown = !id.has_value();
      if (unknown) {
        if (!unk_id_) continue;
        if (fuse_unk_ && previous_unknown) continue;
        id = unk_id_;
      }
      previous_unknown = unknown;
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back({*id, index - 1, index + 1, true});
    }
    if (!symbols.empty()) symbols.back().next = -1;
    return symbols;
  }

  // Applies the merges, always the lowest-ranked pair present first.
  void merge(std::vector<Symbol>& symbols) const {
    std::priority_queue<Candidate> queue;
    const auto consider = [&](int32_t pos) {
      if (pos < 0 || symbols[pos].next < 0) return;
      if (auto m = find_merge(symbols[pos].id, symbols[symbols[pos].next].id))
        queue.push({m->rank, pos, m->merged});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[top.pos];
      if (!left.alive || left.next < 0) continue;
      // Skip candidates made stale by an earlier merge of either symbol.
      const auto current = find_merge(left.id, symbols[left.next].id);
      if (!current || current->merged != top.merged) continue;
      Symbol& right = symbols[left.next];
      left.id = top.merged;
      right.alive = false;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].prev = top.pos;
      consider(left.prev);
      consider(top.pos);
    }
  }

  void emit(int32_t id, Encoding& out) const {
    out.ids.push_back(id);
    out.tokens.emplace_back(*vocab_.token(id));
  }

  Vocab vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

// Maps each token's characters back to bytes and reads the bytes as UTF-8; a token with characters outside
// the map (an added token such as "<|im_end|>" maps, one with CJK text does not) contributes its own UTF-8.
class ByteLevelDecoder final : public Decoder {
 public:
  std::string decode(const std::vector<std::string_view>& tokens) const override {
    std::string bytes;
    for (const std::string_view token : tokens) {
      const size_t mark = bytes.size();
      size_t pos = 0;
      bool mapped = true;
      while (pos < token.size() && mapped) {
        const std::optional<uint8_t> byte = char_to_byte(next_code_point(token, pos));
        if (byte) {
          bytes.push_back(static_cast<char>(*byte));
        } else {
          mapped = false;
        }
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes.append(token);
      }
    }
    return utf8_lossy(bytes);
  }
};

}  // namespace

const std::string& byte_to_char(uint8_t byte) {
  return byte_map().to_char[byte];
}

std::optional<uint8_t> char_to_byte(char32_t c) {
  if (c >= byte_map().to_byte.size() || byte_map().to_byte[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(byte_map().to_byte[c]);
}

std::unique_ptr<Model> make_bpe_model(const Node& node) {
  return std::make_unique<BpeModel>(node);
}

std::unique_ptr<Decoder> make_byte_level_decoder() {
  return std::make_unique<ByteLevelDecoder>();
}

}  // namespace wick::io::detail
