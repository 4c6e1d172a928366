// Post-processors: the special tokens around one text or a pair (TemplateProcessing, BertProcessing), the
// byte-level one that adds nothing, and sequences of these.
#include <algorithm>
#include <map>

#include "io/tokenizer_internal.h"

namespace wick::io::detail {
namespace {

void append(Encoding& out, const Encoding& part) {
  out.ids.insert(out.ids.end(), part.ids.begin(), part.ids.end());
  out.tokens.insert(out.tokens.end(), part.tokens.begin(), part.tokens.end());
  out.type_ids.insert(out.type_ids.end(), part.type_ids.begin(), part.type_ids.end());
}

void append_special(Encoding& out, int32_t id, const std::string& token, int32_t type_id) {
  out.ids.push_back(id);
  out.tokens.push_back(token);
  out.type_ids.push_back(type_id);
}

class ByteLevelPostProcessor final : public PostProcessor {
 public:
  // Only trims offsets in the library, which wick does not report.
  void process(std::vector<Encoding>&, bool) const override {}
};

// Templates such as "[CLS] $A [SEP]" and "[CLS] $A [SEP] $B:1 [SEP]:1": each piece is a sequence (A or B) or
// a special token, with the type id its tokens get.
class TemplatePostProcessor final : public PostProcessor {
 public:
  explicit TemplatePostProcessor(const Node& node) {
    const Node specials = node.at("special_tokens");
    specials.expect_object();
    for (const auto& [name, value] : specials.json().items()) {
      const Node entry(value, specials.label(), specials.path() + "." + name);
      const Node ids = entry.at("ids"), tokens = entry.at("tokens");
      ids.expect_array();
      tokens.expect_array();
      if (ids.size() != tokens.size()) entry.fail("has {} ids but {} tokens", ids.size(), tokens.size());
      Special special;
      for (size_t i = 0; i < ids.size(); ++i) {
        special.ids.push_back(ids.index(i).id());
        special.tokens.push_back(tokens.index(i).str());
      }
      specials_.emplace(name, std::move(special));
    }
    single_ = read_template(node.at("single"), false);
    pair_ = read_template(node.at("pair"), true);
  }

  void process(std::vector<Encoding>& encodings, bool add_special_tokens) const override {
    const std::vector<Piece>& pieces = encodings.size() == 2 ? pair_ : single_;
    Encoding out;
    for (const Piece& piece : pieces) {
      if (piece.special == nullptr) {
        Encoding& part = encodings[piece.sequence];
        std::fill(part.type_ids.begin(), part.type_ids.end(), piece.type_id);
        append(out, part);
      } else if (add_special_tokens) {
        for (size_t i = 0; i < piece.special->ids.size(); ++i)
          append_special(out, piece.special->ids[i], piece.special->tokens[i], piece.type_id);
      }
    }
    encodings.assign(1, std::move(out));
  }

 private:
  struct Special {
    std::vector<int32_t> ids;
    std::vector<std::string> tokens;
  };
  struct Piece {
    const Special* special = nullptr;  // null for a sequence
    size_t sequence = 0;               // 0 for A, 1 for B
    int32_t type_id = 0;
  };

  std::vector<Piece> read_template(const Node& list, bool pair) {
    list.expect_array();
    std::vector<Piece> pieces;
    for (size_t i = 0; i < list.size(); ++i) {
      const Node item = list.index(i);
      Piece piece;
      if (auto sequence = item.find("Sequence")) {
        const std::string name = sequence->at("id").str();
        if (name != "A" && name != "B") sequence->at("id").fail("expected \"A\" or \"B\", got '{}'", name);
        if (name == "B" && !pair) sequence->at("id").fail("the single template cannot use sequence B");
        piece.sequence = name == "B" ? 1 : 0;
        piece.type_id = static_cast<int32_t>(sequence->at("type_id").id());
      } else if (auto special = item.find("SpecialToken")) {
        const std::string name = special->at("id").str();
        const auto it = specials_.find(name);
        if (it == specials_.end()) special->at("id").fail("'{}' is not in special_tokens", name);
        piece.special = &it->second;
        piece.type_id = static_cast<int32_t>(special->at("type_id").id());
      } else {
        item.fail("expected a Sequence or a SpecialToken piece");
      }
      pieces.push_back(piece);
    }
    return pieces;
  }

  std::map<std::string, Special> specials_;  // node-based: pieces point into it
  std::vector<Piece> single_;
  std::vector<Piece> pair_;
};

// [CLS] A [SEP] and, for a pair, B [SEP] with type id 1.
class BertPostProcessor final : public PostProcessor {
 public:
  explicit BertPostProcessor(const Node& node) {
    read(node.at("cls"), cls_token_, cls_id_);
    read(node.at("sep"), sep_token_, sep_id_);
  }

  void process(std::vector<Encoding>& encodings, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    Encoding out;
    append_special(out, cls_id_, cls_token_, 0);
    append(out, encodings[0]);
    append_special(out, sep_id_, sep_token_, 0);
    if (encodings.size() == 2) {
      append(out, encodings[1]);
      append_special(out, sep_id_, sep_token_, 1);
    }
    encodings.assign(1, std::move(out));
  }

 private:
  // ["[CLS]", 101]
  static void read(const Node& node, std::string& token, int32_t& id) {
    node.expect_array();
    if (node.size() != 2) node.fail("expected [token, id]");
    token = node.index(0).str();
    id = node.index(1).id();
  }

  std::string cls_token_, sep_token_;
  int32_t cls_id_ = 0, sep_id_ = 0;
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(const Node& node) {
    const Node list = node.at("processors");
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_post_processor(list.index(i))) stages_.push_back(std::move(stage));
    }
  }

  void process(std::vector<Encoding>& encodings, bool add_special_tokens) const override {
    for (const auto& stage : stages_) stage->process(encodings, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> stages_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Node& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node.at("type").str();
  if (type == "TemplateProcessing") return std::make_unique<TemplatePostProcessor>(node);
  if (type == "BertProcessing") return std::make_unique<BertPostProcessor>(node);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPostProcessor>();
  if (type == "Sequence") return std::make_unique<SequencePostProcessor>(node);
  node.at("type").fail("post-processor '{}' is not supported (supported: {})", type,
                       join({"TemplateProcessing", "BertProcessing", "ByteLevel", "Sequence"}));
}

}  // namespace wick::io::detail
