// The tokenizer against the Hugging Face `tokenizers` library: golden ids, tokens, type ids and decoded text
// for real tokenizer files (Qwen3's byte-level BPE, all-MiniLM-L6-v2's WordPiece) and variants of them,
// written by tests/io/make_tokenizer_golden.py; plus streaming decode, the tokenizer_config.json values and
// the errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "io/tokenizer_internal.h"
#include "support/test_util.h"
#include "wick/io/tokenizer.h"

namespace {

using wick::io::Encoding;
using wick::io::Tokenizer;
using wick::test::expect_error;

const std::filesystem::path kData =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "tokenizers";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

const nlohmann::json& golden() {
  static const nlohmann::json value = nlohmann::json::parse(read_text(kData / "golden.json"));
  return value;
}

const nlohmann::json& golden_variant(const std::string& name) {
  for (const auto& variant : golden()["variants"])
    if (variant["name"] == name) return variant;
  throw std::runtime_error("no variant " + name + " in golden.json");
}

// The base tokenizer.json with the variant's JSON patch applied, as the golden script does.
const Tokenizer& tokenizer_for(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  if (const auto it = cache.find(name); it != cache.end()) return it->second;
  const nlohmann::json& variant = golden_variant(name);
  const std::filesystem::path base = kData / variant["base"].get<std::string>();
  if (variant["patch"].empty() && !variant["merges_as_strings"].get<bool>())
    return cache.emplace(name, Tokenizer::from_file(base)).first->second;
  nlohmann::json document = nlohmann::json::parse(read_text(base / "tokenizer.json")).patch(variant["patch"]);
  if (variant["merges_as_strings"].get<bool>()) {
    nlohmann::json merges = nlohmann::json::array();
    for (const auto& pair : document["model"]["merges"])
      merges.push_back(pair[0].get<std::string>() + " " + pair[1].get<std::string>());
    document["model"]["merges"] = std::move(merges);
  }
  return cache
      .emplace(name, Tokenizer::from_json(document.dump(), read_text(base / "tokenizer_config.json"), name))
      .first->second;
}

std::string stream_decode(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip_special) {
  wick::io::StreamDecoder stream = tokenizer.decode_stream(skip_special);
  std::string text;
  for (const int32_t id : ids) {
    const std::string piece = stream.step(id);
    // Every piece is whole text: an incomplete character is held back, never returned as U+FFFD.
    EXPECT_EQ(wick::io::detail::invalid_utf8_offset(piece), std::string_view::npos);
    text += piece;
  }
  return text + stream.flush();
}

class GoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesLibrary) {
  const Tokenizer& tokenizer = tokenizer_for(GetParam());
  const nlohmann::json& cases = golden_variant(GetParam())["cases"];
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const bool special = c["add_special_tokens"];
    SCOPED_TRACE(testing::Message() << "text: " << nlohmann::json(text).dump() << " special: " << special);
    const Encoding encoding = c.contains("pair")
                                  ? tokenizer.encode_pair(text, c["pair"].get<std::string>(), special)
                                  : tokenizer.encode(text, special);
    EXPECT_EQ(encoding.ids, c["ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(encoding.tokens, c["tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(encoding.type_ids, c["type_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(encoding.attention_mask, std::vector<int32_t>(encoding.size(), 1));
    EXPECT_EQ(tokenizer.decode(encoding.ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer.decode(encoding.ids, true), c["decoded_skip_special"].get<std::string>());
    EXPECT_EQ(stream_decode(tokenizer, encoding.ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(stream_decode(tokenizer, encoding.ids, true), c["decoded_skip_special"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, GoldenTest,
                         testing::Values("qwen3", "gpt2-style", "gpt2-prefix-space", "llama3-style",
                                         "qwen3-added-flags", "minilm", "minilm-bert-processing",
                                         "minilm-cased", "minilm-nfkd-strip", "minilm-nfkc-nfd",
                                         "minilm-split-behaviors", "minilm-no-pre-tokenizer"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(Tokenizer, GoldenCoversEveryVariant) {
  EXPECT_EQ(golden()["variants"].size(), 12u);
}

// Byte-level BPE loses nothing: decoding gives back the (NFC-normalized) text.
TEST(Tokenizer, ByteLevelRoundTrip) {
  const Tokenizer& qwen = tokenizer_for("qwen3");
  const Tokenizer& gpt2 = tokenizer_for("gpt2-style");
  for (const auto& c : golden_variant("qwen3")["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(nlohmann::json(text).dump());
    const std::string nfc = wick::io::detail::normalize_unicode(text, wick::io::detail::NormalForm::nfc);
    EXPECT_EQ(qwen.decode(qwen.encode(text).ids), nfc);
    EXPECT_EQ(gpt2.decode(gpt2.encode(text).ids), text);
  }
}

TEST(Tokenizer, StreamHoldsBackSplitCharacters) {
  const Tokenizer& qwen = tokenizer_for("qwen3");
  const std::string text = "家族👨‍👩‍👧‍👦!";
  const std::vector<int32_t> ids = qwen.encode(text).ids;
  ASSERT_GT(ids.size(), 4u);  // the emoji's bytes span several tokens
  wick::io::StreamDecoder stream = qwen.decode_stream();
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back(stream.step(id));
  EXPECT_EQ(stream.flush(), "");
  std::string joined;
  size_t empty = 0;
  for (const std::string& piece : pieces) {
    joined += piece;
    empty += piece.empty();
  }
  EXPECT_EQ(joined, text);
  EXPECT_GT(empty, 0u) << "no token was held back";

  // Ending inside a character: flush gives what decode gives, U+FFFD for the unfinished bytes.
  std::vector<int32_t> cut(ids.begin(), ids.end() - 1);
  while (!cut.empty() && !qwen.decode(cut).ends_with("\xEF\xBF\xBD")) cut.pop_back();
  ASSERT_FALSE(cut.empty());
  wick::io::StreamDecoder partial = qwen.decode_stream();
  std::string streamed;
  for (const int32_t id : cut) streamed += partial.step(id);
  streamed += partial.flush();
  EXPECT_EQ(streamed, qwen.decode(cut));
}

TEST(Tokenizer, QwenConfig) {
  const Tokenizer& qwen = tokenizer_for("qwen3");
  EXPECT_EQ(qwen.model_type(), "BPE");
  EXPECT_EQ(qwen.vocab_size(), 151669);
  EXPECT_EQ(qwen.eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(qwen.pad_id(), 151643);  // <|endoftext|>
  EXPECT_FALSE(qwen.bos_id().has_value());
  EXPECT_FALSE(qwen.unk_id().has_value());
  EXPECT_EQ(qwen.model_max_length(), 131072);
  EXPECT_TRUE(qwen.chat_template().starts_with("{%- if tools %}"));
  EXPECT_EQ(qwen.token_to_id("<think>"), 151667);
  EXPECT_EQ(qwen.token_to_id("Hello"), 9707);
  EXPECT_EQ(qwen.id_to_token(9707), "Hello");
  EXPECT_EQ(qwen.id_to_token(151644), "<|im_start|>");
  EXPECT_FALSE(qwen.id_to_token(151669).has_value());
  EXPECT_FALSE(qwen.token_to_id("not a token").has_value());
  EXPECT_TRUE(qwen.is_special(151643));
  EXPECT_FALSE(qwen.is_special(151667));  // <think> is an added token but not a special one
  EXPECT_FALSE(qwen.is_special(9707));
}

TEST(Tokenizer, MiniLmConfig) {
  const Tokenizer& bert = tokenizer_for("minilm");
  EXPECT_EQ(bert.model_type(), "WordPiece");
  EXPECT_EQ(bert.vocab_size(), 30522);
  EXPECT_EQ(bert.unk_id(), 100);
  EXPECT_EQ(bert.pad_id(), 0);
  EXPECT_FALSE(bert.eos_id().has_value());
  EXPECT_EQ(bert.model_max_length(), 512);
  EXPECT_EQ(bert.chat_template(), "");
  const Encoding pair = bert.encode_pair("hello there", "general kenobi");
  EXPECT_EQ(pair.ids.front(), 101);
  EXPECT_EQ(pair.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 1}));
}

TEST(Tokenizer, FromFileAcceptsFileOrDirectory) {
  const Tokenizer by_dir = Tokenizer::from_file(kData / "all-minilm-l6-v2");
  const Tokenizer by_file = Tokenizer::from_file(kData / "all-minilm-l6-v2" / "tokenizer.json");
  EXPECT_EQ(by_dir.encode("Hello there!").ids, by_file.encode("Hello there!").ids);
  EXPECT_EQ(by_file.model_max_length(), 512);  // tokenizer_config.json beside the file is read too
}

TEST(Tokenizer, ConcurrentEncodeAgrees) {
  const Tokenizer& qwen = tokenizer_for("qwen3");
  const std::string text = "Threads share one tokenizer: 你好, мир, 👋 — def f(x):\n    return x\n";
  const std::vector<int32_t> expected = qwen.encode(text).ids;
  std::vector<std::thread> threads;
  std::vector<int> agree(4, 0);
  for (size_t t = 0; t < agree.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) agree[t] += qwen.encode(text).ids == expected;
    });
  for (auto& thread : threads) thread.join();
  for (const int count : agree) EXPECT_EQ(count, 50);
}

TEST(Tokenizer, LongInputs) {
  const Tokenizer& qwen = tokenizer_for("qwen3");
  for (const std::string& text :
       {std::string(200000, ' '), std::string(200000, 'a'), std::string(100000, '\n'),
        std::string(50000, '!') + std::string(50000, ' ') + "x"}) {
    const Encoding encoding = qwen.encode(text);
    EXPECT_FALSE(encoding.ids.empty());
    EXPECT_EQ(qwen.decode(encoding.ids), text);
  }
}

// A tiny BPE without pre-tokenizer: unknown characters become one fused unknown token.
TEST(Tokenizer, BpeUnknownCharacters) {
  const std::string json = R"({
    "added_tokens": [],
    "model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "abab": 4},
              "merges": [["a", "b"], ["ab", "ab"]], "unk_token": "<unk>", "fuse_unk": true}})";
  const Tokenizer tokenizer = Tokenizer::from_json(json);
  EXPECT_EQ(tokenizer.encode("abxyabab").ids, (std::vector<int32_t>{3, 0, 4}));
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{3, 0, 4}),
            "ab <unk> abab");  // no decoder: joined by spaces
  EXPECT_EQ(tokenizer.unk_id(), 0);
}

const char* kTinyBpe = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})";

// kTinyBpe with `section` set to `value`.
std::string tiny_with(const std::string& section, const std::string& value) {
  nlohmann::json document = nlohmann::json::parse(kTinyBpe);
  document[section] = nlohmann::json::parse(value);
  return document.dump();
}

TEST(TokenizerErrors, MissingFile) {
  expect_error([] { Tokenizer::from_file(kData / "no-such-tokenizer.json"); },
               {"[tokenizer] ", "no-such-tokenizer.json", "does not exist"});
  expect_error([] { Tokenizer::from_file(kData); }, {"[tokenizer] ", "has no tokenizer.json"});
}

TEST(TokenizerErrors, MalformedJson) {
  expect_error([] { Tokenizer::from_json("{\"model\": [1, 2", {}, "broken.json"); },
               {"[tokenizer] broken.json is not valid JSON"});
  expect_error([] { Tokenizer::from_json(kTinyBpe, "{\"eos_token\": ", "t.json"); },
               {"[tokenizer] t.json (tokenizer_config.json) is not valid JSON"});
  expect_error(
      [] { Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": [], "merges": []}})", {}, "t.json"); },
      {"[tokenizer] t.json: tokenizer.model.vocab: expected an object, got array"});
  expect_error([] { Tokenizer::from_json(R"({"normalizer": null})", {}, "t.json"); },
               {"[tokenizer] t.json: tokenizer: missing field 'model'"});
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  expect_error([] { Tokenizer::from_json(R"({"model": {"type": "Unigram", "vocab": []}})", {}, "u.json"); },
               {"[tokenizer] u.json: tokenizer.model.type: model 'Unigram' is not supported"});
  expect_error(
      [] { Tokenizer::from_json(tiny_with("normalizer", R"({"type": "Precompiled"})"), {}, "n.json"); },
      {"[tokenizer] n.json: tokenizer.normalizer.type: normalizer 'Precompiled' is not supported", "NFC"});
  expect_error(
      [] {
        Tokenizer::from_json(tiny_with("pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [
                                 {"type": "Metaspace", "replacement": "_"}]})"),
                             {}, "p.json");
      },
      {"[tokenizer] p.json: tokenizer.pre_tokenizer.pretokenizers[0].type: pre-tokenizer 'Metaspace' is not "
       "supported"});
  expect_error([] { Tokenizer::from_json(tiny_with("decoder", R"({"type": "Metaspace"})"), {}, "d.json"); },
               {"[tokenizer] d.json: tokenizer.decoder.type: decoder 'Metaspace' is not supported"});
  expect_error([] { Tokenizer::from_json(tiny_with("post_processor", R"({"type": "RobertaProcessing"})")); },
               {"[tokenizer] ", "post-processor 'RobertaProcessing' is not supported"});
}

TEST(TokenizerErrors, BadFields) {
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
                             {}, "m.json");
      },
      {"[tokenizer] m.json: tokenizer.model.merges[0]: token 'ab' is not in model.vocab"});
  expect_error(
      [] { Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})"); },
      {"[tokenizer] ", "tokenizer.model.vocab.a: id -1 is out of range"});
  expect_error(
      [] {
        Tokenizer::from_json(tiny_with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "(a"},
                                                           "behavior": "Isolated", "invert": false})"),
                             {}, "r.json");
      },
      {"[tokenizer] r.json: tokenizer.pre_tokenizer.pattern.Regex: invalid regex"});
  expect_error(
      [] {
        Tokenizer::from_json(tiny_with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "a"},
                                                           "behavior": "Sideways"})"));
      },
      {"[tokenizer] ", "tokenizer.pre_tokenizer.behavior: split behavior 'Sideways' is not supported"});
  expect_error(
      [] { Tokenizer::from_json(kTinyBpe, R"({"eos_token": {"content": "</s>"}})", "c.json"); },
      {"[tokenizer] c.json (tokenizer_config.json): config.eos_token: '</s>' is not in the vocabulary"});
}

TEST(TokenizerErrors, BadInput) {
  const Tokenizer tokenizer = Tokenizer::from_json(kTinyBpe, {}, "tiny.json");
  expect_error(
      [&] {
        tokenizer.decode(std::vector<int32_t>{0, 3});
      },
      {"[tokenizer] tiny.json: decode: id 3 is out of range", "0..2"});
  expect_error([&] { tokenizer.decode(std::vector<int32_t>{-1}); }, {"[tokenizer] ", "id -1"});
  expect_error([&] { tokenizer.encode("ab\xC3("); },
               {"[tokenizer] encode: the text is not valid UTF-8 (byte 2"});
}

}  // namespace
