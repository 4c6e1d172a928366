// The tokenizer: loading tokenizer.json and tokenizer_config.json, splitting on added tokens, running the
// pipeline stages, decoding and stream decoding.
#include "wick/io/tokenizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/tokenizer_internal.h"

namespace wick::io {
namespace detail {

// ---- Node ----

Node Node::at(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end()) fail("missing field '{}'", key);
  return Node(*it, label_, path_ + "." + std::string(key));
}

Node Node::at_or_null(std::string_view key) const {
  static const nlohmann::json null_value;
  expect_object();
  const auto it = value_->find(key);
  return Node(it == value_->end() ? null_value : *it, label_, path_ + "." + std::string(key));
}

std::optional<Node> Node::find(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return Node(*it, label_, path_ + "." + std::string(key));
}

Node Node::index(size_t i) const {
  expect_array();
  if (i >= value_->size()) fail("index {} is out of range for {} entries", i, value_->size());
  return Node((*value_)[i], label_, fmt::format("{}[{}]", path_, i));
}

size_t Node::size() const {
  expect_array();
  return value_->size();
}

std::string Node::str() const {
  if (!value_->is_string()) fail("expected a string, got {}", value_->type_name());
  return value_->get<std::string>();
}

bool Node::boolean() const {
  if (!value_->is_boolean()) fail("expected true or false, got {}", value_->type_name());
  return value_->get<bool>();
}

int64_t Node::integer() const {
  if (value_->is_number_unsigned()) {
    const auto value = value_->get<uint64_t>();
    if (value > static_cast<uint64_t>(INT64_MAX)) fail("{} is too large", value);
    return static_cast<int64_t>(value);
  }
  if (!value_->is_number_integer()) fail("expected an integer, got {}", value_->type_name());
  return value_->get<int64_t>();
}

int32_t Node::id() const {
  const int64_t value = integer();
  if (value < 0 || value > INT32_MAX) fail("id {} is out of range (expected 0..{})", value, INT32_MAX);
  return static_cast<int32_t>(value);
}

void Node::expect_object() const {
  if (!value_->is_object()) fail("expected an object, got {}", value_->type_name());
}

void Node::expect_array() const {
  if (!value_->is_array()) fail("expected an array, got {}", value_->type_name());
}

bool Node::bool_or(std::string_view key, bool fallback) const {
  const auto member = find(key);
  return member ? member->boolean() : fallback;
}

std::string Node::str_or(std::string_view key, std::string_view fallback) const {
  const auto member = find(key);
  return member ? member->str() : std::string(fallback);
}

std::string join(const std::vector<std::string_view>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

// ---- Vocab ----

Vocab::Vocab(const Node& object) {
  object.expect_object();
  ids_.reserve(object.json().size());
  for (const auto& [token, value] : object.json().items()) {
    const int32_t id = Node(value, object.label(), object.path() + "." + token).id();
    const auto [it, inserted] = ids_.emplace(token, id);
    tokens_.emplace(id, it->first);
    end_ = std::max(end_, id + 1);
  }
}

std::optional<int32_t> Vocab::find(std::string_view token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string_view> Vocab::token(int32_t id) const {
  const auto it = tokens_.find(id);
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

namespace {

std::unique_ptr<Model> make_model(const Node& node) {
  const std::string type = node.str_or("type", "");
  // Files written by old versions of the library leave out the model's type.
  if (type == "BPE" || (type.empty() && node.json().contains("merges"))) return make_bpe_model(node);
  if (type == "WordPiece" || (type.empty() && node.json().contains("max_input_chars_per_word")))
    return make_wordpiece_model(node);
  if (type.empty()) node.fail("the model has no type");
  node.at("type").fail("model '{}' is not supported (supported: BPE, WordPiece)", type);
}

std::unique_ptr<Decoder> make_decoder(const Node& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node.at("type").str();
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "WordPiece") return make_wordpiece_decoder(node);
  node.at("type").fail("decoder '{}' is not supported (supported: ByteLevel, WordPiece)", type);
}

// A token from added_tokens: matched in the text before anything else runs.
struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool single_word = false;  // only where no word character touches either end
  bool lstrip = false;       // takes the whitespace before it
  bool rstrip = false;       // takes the whitespace after it
  bool normalized = false;   // matched in the normalized text rather than the raw input
  std::string text;          // what is matched and decoded: the content, normalized if `normalized`
};

// A byte trie of added tokens giving leftmost-longest matches.
class AddedMatcher {
 public:
  void add(std::string_view content, size_t token) {
    size_t node = 0;
    for (const char c : content) {
      const auto byte = static_cast<uint8_t>(c);
      const auto child = std::find_if(nodes_[node].children.begin(), nodes_[node].children.end(),
                                      [&](const auto& entry) { return entry.first == byte; });
      if (child != nodes_[node].children.end()) {
        node = child->second;
      } else {
        nodes_[node].children.emplace_back(byte, nodes_.size());
        node = nodes_.size();
        nodes_.emplace_back();
      }
    }
    nodes_[node].token = static_cast<int64_t>(token);
  }

  bool empty() const { return nodes_.size() == 1; }

  struct Match {
    size_t begin;
    size_t end;
    size_t token;
  };

  // The match starting first at or after `from`, the longest among those starting there.
  std::optional<Match> find(std::string_view text, size_t from) const {
    for (size_t begin = from; begin < text.size(); ++begin) {
      size_t node = 0;
      std::optional<Match> longest;
      for (size_t pos = begin; pos < text.size(); ++pos) {
        const auto byte = static_cast<uint8_t>(text[pos]);
        const auto& children = nodes_[node].children;
        const auto child = std::find_if(children.begin(), children.end(),
                                        [&](const auto& entry) { return entry.first == byte; });
        if (child == children.end()) break;
        node = child->second;
        if (nodes_[node].token >= 0) longest = Match{begin, pos + 1, static_cast<size_t>(nodes_[node].token)};
      }
      if (longest) return longest;
    }
    return std::nullopt;
  }

 private:
  struct TrieNode {
    std::vector<std::pair<uint8_t, size_t>> children;
    int64_t token = -1;
  };
  std::vector<TrieNode> nodes_{1};
};

// A stretch of input: text still to tokenize, or an added token already matched.
struct Segment {
  std::string text;
  std::optional<size_t> added;  // index into the added tokens
};

bool ends_with_word_character(std::string_view text) {
  if (text.empty()) return false;
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return is_word_character(next_code_point(text, start));
}

bool starts_with_word_character(std::string_view text) {
  size_t pos = 0;
  return !text.empty() && is_word_character(next_code_point(text, pos));
}

// The offset where the run of whitespace that ends `text` starts.
size_t trailing_space_start(std::string_view text) {
  size_t start = text.size(), pos = 0;
  while (pos < text.size()) {
    const size_t at = pos;
    if (!is_white_space(next_code_point(text, pos))) {
      start = text.size();
    } else if (start == text.size()) {
      start = at;
    }
  }
  return start;
}

size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!is_white_space(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) wick::fail("tokenizer", "cannot open {}: {}", path.string(), std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) wick::fail("tokenizer", "cannot read {}", path.string());
  return std::move(content).str();
}

nlohmann::json parse_json(std::string_view text, std::string_view label) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    wick::fail("tokenizer", "{} is not valid JSON: {}", label, e.what());
  }
}

}  // namespace
}  // namespace detail

struct Tokenizer::Impl {
  std::string label;
  std::unique_ptr<detail::Normalizer> normalizer;
  std::unique_ptr<detail::PreTokenizer> pre_tokenizer;
  std::unique_ptr<detail::Model> model;
  std::unique_ptr<detail::PostProcessor> post_processor;
  std::unique_ptr<detail::Decoder> decoder;

  std::vector<detail::AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, size_t> added_by_content;
  detail::AddedMatcher raw_matcher;         // tokens with normalized = false
  detail::AddedMatcher normalized_matcher;  // the normalized form of tokens with normalized = true
  int32_t vocab_end = 0;

  std::optional<int32_t> bos, eos, pad, unk;
  std::optional<int64_t> model_max_length;
  std::string chat_template;

  void load_tokenizer(const detail::Node& root) {
    root.expect_object();
    normalizer = detail::make_normalizer(root.at_or_null("normalizer"));
    pre_tokenizer = detail::make_pre_tokenizer(root.at_or_null("pre_tokenizer"));
    model = detail::make_model(root.at("model"));
    post_processor = detail::make_post_processor(root.at_or_null("post_processor"));
    decoder = detail::make_decoder(root.at_or_null("decoder"));
    vocab_end = model->vocab().end();
    if (auto list = root.find("added_tokens")) load_added_tokens(*list);
  }

  // Ids follow the library, not the file: a token already in the vocabulary keeps its id there, and new
  // ones are numbered on from the model's vocabulary. In real files both agree.
  void load_added_tokens(const detail::Node& list) {
    // New tokens are numbered from the model's vocabulary size (its count of entries).
    auto next_id = static_cast<int32_t>(model->vocab().size());
    for (size_t i = 0; i < list.size(); ++i) {
      const detail::Node entry = list.index(i);
      detail::AddedToken token;
      token.content = entry.at("content").str();
      entry.at("id").id();
      if (token.content.empty()) continue;  // ignored by the library
      token.special = entry.bool_or("special", false);
      token.single_word = entry.bool_or("single_word", false);
      token.lstrip = entry.bool_or("lstrip", false);
      token.rstrip = entry.bool_or("rstrip", false);
      token.normalized = entry.bool_or("normalized", !token.special);
      // The library reports (and decodes) a normalized token in its normalized form.
      token.text = token.normalized && normalizer ? normalizer->normalize(token.content) : token.content;
      if (const auto it = added_by_content.find(token.content); it != added_by_content.end()) {
        token.id = added[it->second].id;
        added[it->second] = std::move(token);
        continue;
      }
      if (const auto id = model->vocab().find(token.content)) {
        token.id = *id;
      } else {
        token.id = next_id++;
      }
      added_by_content[token.content] = added.size();
      added.push_back(std::move(token));
    }
    for (size_t index = 0; index < added.size(); ++index) {
      const detail::AddedToken& token = added[index];
      added_by_id[token.id] = index;
      vocab_end = std::max(vocab_end, token.id + 1);
      if (token.text.empty()) continue;
      (token.normalized ? normalized_matcher : raw_matcher).add(token.text, index);
    }
  }

  void load_config(const detail::Node& root) {
    root.expect_object();
    bos = special_id(root, "bos_token");
    eos = special_id(root, "eos_token");
    pad = special_id(root, "pad_token");
    unk = special_id(root, "unk_token");
    // The library writes int(1e30) ("no limit") as a float.
    if (auto limit = root.find("model_max_length"); limit && limit->json().is_number_integer())
      model_max_length = limit->integer();
    if (auto chat = root.find("chat_template")) {
      if (chat->json().is_string()) {
        chat_template = chat->str();
      } else {
        // A list of named templates: the default one.
        for (size_t i = 0; i < chat->size(); ++i) {
          const detail::Node entry = chat->index(i);
          if (entry.at("name").str() == "default") chat_template = entry.at("template").str();
        }
      }
    }
  }

  // "<s>" or {"content": "<s>", ...}; null when unset.
  std::optional<int32_t> special_id(const detail::Node& root, std::string_view key) const {
    const auto field = root.find(key);
    if (!field) return std::nullopt;
    const std::string content = field->json().is_object() ? field->at("content").str() : field->str();
    const auto id = token_to_id(content);
    if (!id) field->fail("'{}' is not in the vocabulary", content);
    return id;
  }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (const auto it = added_by_content.find(std::string(token)); it != added_by_content.end())
      return added[it->second].id;
    return model->vocab().find(token);
  }

  std::optional<std::string_view> id_to_token(int32_t id) const {
    if (const auto it = added_by_id.find(id); it != added_by_id.end()) return added[it->second].text;
    return model->vocab().token(id);
  }

  // Splits `text` around the matches of `matcher`, honouring the tokens' single_word, lstrip and rstrip.
  void split_added(std::string_view text, const detail::AddedMatcher& matcher,
                   std::vector<detail::Segment>& out) const {
    size_t done = 0, search = 0;
    while (auto match = matcher.empty() ? std::nullopt : matcher.find(text, search)) {
      search = match->end;
      const detail::AddedToken& token = added[match->token];
      size_t begin = match->begin, end = match->end;
      if (token.single_word && (detail::ends_with_word_character(text.substr(0, begin)) ||
                                detail::starts_with_word_character(text.substr(end))))
        continue;
      if (token.lstrip) begin = detail::trailing_space_start(text.substr(0, begin));
      // Whitespace an earlier token took with rstrip stays with it.
      begin = std::max(begin, done);
      if (token.rstrip) end += detail::leading_space_length(text.substr(end));
      if (begin > done) out.push_back({std::string(text.substr(done, begin - done)), std::nullopt});
      out.push_back({std::string(text.substr(begin, end - begin)), match->token});
      done = end;
    }
    if (done < text.size()) out.push_back({std::string(text.substr(done)), std::nullopt});
  }

  Encoding encode_one(std::string_view text, int32_t type_id) const {
    if (const size_t bad = detail::invalid_utf8_offset(text); bad != std::string_view::npos)
      wick::fail("tokenizer", "encode: the text is not valid UTF-8 (byte {} of {})", bad, text.size());
    std::vector<detail::Segment> raw, segments;
    split_added(text, raw_matcher, raw);
    for (detail::Segment& segment : raw) {
      if (segment.added) {
        segments.push_back(std::move(segment));
        continue;
      }
      const std::string normalized =
          normalizer ? normalizer->normalize(segment.text) : std::move(segment.text);
      split_added(normalized, normalized_matcher, segments);
    }
    Encoding out;
    std::vector<std::string> words;
    for (const detail::Segment& segment : segments) {
      if (segment.added) {
        out.ids.push_back(added[*segment.added].id);
        out.tokens.push_back(segment.text);
        continue;
      }
      words.assign(1, segment.text);
      if (pre_tokenizer) pre_tokenizer->pre_tokenize(words);
      for (const std::string& word : words) model->tokenize(word, out);
    }
    out.type_ids.assign(out.ids.size(), type_id);
    return out;
  }

  Encoding finish(std::vector<Encoding> encodings, bool add_special_tokens) const {
    if (post_processor) post_processor->process(encodings, add_special_tokens);
    Encoding out = std::move(encodings[0]);
    for (size_t i = 1; i < encodings.size(); ++i) {
      out.ids.insert(out.ids.end(), encodings[i].ids.begin(), encodings[i].ids.end());
      out.tokens.insert(out.tokens.end(), encodings[i].tokens.begin(), encodings[i].tokens.end());
      out.type_ids.insert(out.type_ids.end(), encodings[i].type_ids.begin(), encodings[i].type_ids.end());
    }
    out.attention_mask.assign(out.ids.size(), 1);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::vector<std::string_view> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids) {
      if (const auto it = added_by_id.find(id); it != added_by_id.end()) {
        if (!(skip_special_tokens && added[it->second].special)) tokens.push_back(added[it->second].text);
        continue;
      }
      const auto token = model->vocab().token(id);
      if (!token) {
        wick::fail("tokenizer", "{}: decode: id {} is out of range or has no token (ids run 0..{})", label,
                   id, vocab_end - 1);
      }
      tokens.push_back(*token);
    }
    if (decoder) return decoder->decode(tokens);
    return fmt::format("{}", fmt::join(tokens, " "));
  }
};

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               std::string_view label) {
  auto impl = std::make_shared<Impl>();
  impl->label = label;
  try {
    const nlohmann::json root = detail::parse_json(tokenizer_json, label);
    impl->load_tokenizer(detail::Node(root, impl->label, "tokenizer"));
    if (!config_json.empty()) {
      const std::string config_label = fmt::format("{} (tokenizer_config.json)", label);
      const nlohmann::json config = detail::parse_json(config_json, config_label);
      impl->load_config(detail::Node(config, config_label, "config"));
    }
  } catch (const nlohmann::json::exception& e) {
    wick::fail("tokenizer", "{}: unexpected JSON content: {}", label, e.what());
  }
  if (!impl->unk) {
    if (const auto token = impl->model->unk_token()) impl->unk = impl->token_to_id(*token);
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  std::error_code error;
  const bool directory = std::filesystem::is_directory(path, error);
  const std::filesystem::path file = directory ? path / "tokenizer.json" : path;
  if (!std::filesystem::exists(file, error)) {
    if (directory) wick::fail("tokenizer", "{} has no tokenizer.json", path.string());
    wick::fail("tokenizer", "{} does not exist", file.string());
  }
  const std::filesystem::path config_file = file.parent_path() / "tokenizer_config.json";
  const std::string config =
      std::filesystem::exists(config_file, error) ? detail::read_file(config_file) : std::string();
  return from_json(detail::read_file(file), config, file.string());
}

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<Encoding> encodings;
  encodings.push_back(impl_->encode_one(text, 0));
  return impl_->finish(std::move(encodings), add_special_tokens);
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second,
                                bool add_special_tokens) const {
  std::vector<Encoding> encodings;
  encodings.push_back(impl_->encode_one(first, 0));
  encodings.push_back(impl_->encode_one(second, 1));
  return impl_->finish(std::move(encodings), add_special_tokens);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->decode(ids, skip_special_tokens);
}

StreamDecoder Tokenizer::decode_stream(bool skip_special_tokens) const {
  return StreamDecoder(*this, skip_special_tokens);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const auto token = impl_->id_to_token(id);
  if (!token) return std::nullopt;
  return std::string(*token);
}

int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_end;
}

bool Tokenizer::is_special(int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::string_view Tokenizer::model_type() const {
  return impl_->model->type();
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos;
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->pad;
}
std::optional<int32_t> Tokenizer::unk_id() const {
  return impl_->unk;
}
std::optional<int64_t> Tokenizer::model_max_length() const {
  return impl_->model_max_length;
}
const std::string& Tokenizer::chat_template() const {
  return impl_->chat_template;
}

// ---- StreamDecoder ----

std::string StreamDecoder::step(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  // Nothing new yet, or the last character is still incomplete (decoded as U+FFFD for now).
  if (text.size() <= context_text_.size() || text.ends_with("\xEF\xBF\xBD")) return {};
  if (!text.starts_with(context_text_))
    wick::fail("tokenizer", "decode_stream: decoding id {} changed text already returned", id);
  std::string fresh = text.substr(context_text_.size());
  // The ids just decoded become the context of the next step.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(context_size_));
  context_size_ = ids_.size();
  context_text_ = tokenizer_.decode(ids_, skip_special_tokens_);
  return fresh;
}

std::string StreamDecoder::flush() {
  const std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  std::string rest = text.size() > context_text_.size() ? text.substr(context_text_.size()) : std::string();
  ids_.clear();
  context_size_ = 0;
  context_text_.clear();
  return rest;
}

}  // namespace wick::io
