// ChatTemplate against Python's jinja2 configured as transformers' apply_chat_template: golden renders of
// real chat templates (tests/data/chat_templates, written by tests/io/make_chat_template_golden.py), loading
// from model directories and tokenizer_config.json, and the errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/test_util.h"
#include "wick/io/chat_template.h"

namespace {

using nlohmann::ordered_json;
using wick::io::ChatTemplate;
using wick::test::expect_error;

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path().parent_path() / "data";
const std::filesystem::path kTemplates = kData / "chat_templates";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

const ordered_json& golden() {
  static const ordered_json value = ordered_json::parse(read_text(kTemplates / "golden.json"));
  return value;
}

ChatTemplate golden_template(const std::string& name) {
  const ordered_json& tokens = golden()["templates"][name];
  return ChatTemplate(read_text(kTemplates / (name + ".jinja")), tokens["bos_token"], tokens["eos_token"],
                      name);
}

// Renders every golden case of `name`; returns how many were checked.
int check_golden(const ChatTemplate& chat_template, const std::string& name) {
  int checked = 0;
  for (const ordered_json& c : golden()["cases"]) {
    if (c["template"] != name) continue;
    SCOPED_TRACE(testing::Message() << name << " / " << c["conversation"].get<std::string>()
                                    << " / add_generation_prompt=" << c["add_generation_prompt"]
                                    << " / tools=" << c["with_tools"] << " / extra=" << c["extra"].dump());
    ordered_json extra = c["extra"];
    if (c["with_tools"].get<bool>()) extra["tools"] = golden()["tools"];
    const ordered_json& messages = golden()["conversations"][c["conversation"].get<std::string>()];
    const bool add_generation_prompt = c["add_generation_prompt"];
    if (c.contains("expected")) {
      EXPECT_EQ(chat_template.render(messages, add_generation_prompt, extra),
                c["expected"].get<std::string>());
    } else {
      expect_error([&] { chat_template.render(messages, add_generation_prompt, extra); },
                   {"[chat_template]", c["error"].get<std::string>()});
    }
    ++checked;
  }
  return checked;
}

class ChatTemplateGolden : public testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateGolden, RendersLikeTransformers) {
  EXPECT_GT(check_golden(golden_template(GetParam()), GetParam()), 0);
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, ChatTemplateGolden,
                         testing::Values("features", "qwen3", "smollm2-instruct", "qwen2.5-instruct",
                                         "qwen3.5", "llama-3.1-instruct", "zephyr",
                                         "mistral-7b-instruct-v0.1", "mistral-nemo-instruct-2407",
                                         "deepseek-r1", "hermes-2-pro-llama-3-tool-use"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(ChatTemplateGoldenFile, CoversEveryTemplate) {
  for (const auto& [name, tokens] : golden()["templates"].items())
    EXPECT_TRUE(std::filesystem::exists(kTemplates / (name + ".jinja"))) << name;
}

// A scratch directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("wick_chat_template_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

TEST(ChatTemplateLoad, ModelDirectoryWithTokenizerConfig) {
  // The Qwen3 tokenizer directory: the template and the special tokens come from tokenizer_config.json.
  const ChatTemplate chat_template = ChatTemplate::load(kData / "tokenizers" / "qwen3");
  EXPECT_EQ(chat_template.eos_token(), "<|im_end|>");
  EXPECT_EQ(chat_template.bos_token(), "");
  EXPECT_EQ(chat_template.source(), read_text(kTemplates / "qwen3.jinja"));
  EXPECT_GT(check_golden(chat_template, "qwen3"), 0);
}

TEST(ChatTemplateLoad, JinjaFileWinsOverTokenizerConfig) {
  const TempDir dir;
  dir.write("tokenizer_config.json", R"({"chat_template": "from config",
      "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"})");
  dir.write("chat_template.jinja", "{{ bos_token }}from jinja{{ eos_token }}\n");
  const ChatTemplate chat_template = ChatTemplate::load(dir.path());
  EXPECT_EQ(chat_template.render(ordered_json::array(), false), "<s>from jinja</s>");
  EXPECT_EQ(ChatTemplate::load(dir.path() / "tokenizer_config.json").render(ordered_json::array(), false),
            "from config");
  EXPECT_EQ(ChatTemplate::load(dir.path() / "chat_template.jinja").render(ordered_json::array(), false),
            "<s>from jinja</s>");
}

TEST(ChatTemplateLoad, NamedTemplatesUseDefault) {
  const TempDir dir;
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "tools"},
      {"name": "default", "template": "plain"}]})");
  EXPECT_EQ(ChatTemplate::load(dir.path()).render(ordered_json::array(), false), "plain");

  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "tools"}]})");
  expect_error([&] { ChatTemplate::load(dir.path()); },
               {"[chat_template]", "tokenizer_config.json", "no template named \"default\"", "tool_use"});
}

TEST(ChatTemplateLoad, MissingTemplateNamesTheFile) {
  const TempDir dir;
  expect_error(
      [&] { ChatTemplate::load(dir.path()); },
      {"[chat_template]", dir.path().string(), "no chat_template.jinja and no tokenizer_config.json"});
  dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  expect_error([&] { ChatTemplate::load(dir.path()); }, {"[chat_template]", "tokenizer_config.json",
                                                         "has no \"chat_template\"", "chat_template.jinja"});
  expect_error([&] { ChatTemplate::load(dir.path() / "absent"); },
               {"[chat_template]", "absent", "does not exist"});
  dir.write("tokenizer_config.json", "{not json");
  expect_error([&] { ChatTemplate::load(dir.path()); },
               {"[chat_template]", "tokenizer_config.json", "not valid JSON"});
}

TEST(ChatTemplateErrors, SyntaxErrorsGiveLineColumnAndExcerpt) {
  expect_error([] { ChatTemplate("Hello\n{% if messages %}\n  {{ messages[0].content }\n{% endif %}"); },
               {"[chat_template]", "syntax error", "line 3, column", "near \"  {{ messages[0].content }"});
  expect_error([] { ChatTemplate("{% for m in messages %}\n{{ m }}\n"); },
               {"line 2", "expected 'endfor' or 'else' to close the 'for' from line 1"});
  expect_error([] { ChatTemplate("{% if x %}{% endfor %}{% endif %}"); },
               {"line 1, column 11", "unexpected 'endfor'", "'if' from line 1"});
  expect_error([] { ChatTemplate("a\n{{ x | no_such_filter }}"); },
               {"line 2, column 8", "no filter named 'no_such_filter'"});
  expect_error([] { ChatTemplate("{{ x is no_such_test }}"); }, {"no test named 'no_such_test'"});
  expect_error([] { ChatTemplate("{% frobnicate %}"); }, {"unknown tag 'frobnicate'"});
  expect_error([] { ChatTemplate("{{ 'unterminated }}"); },
               {"line 1, column 4", "unterminated string literal"});
  expect_error([] { ChatTemplate("{# never closed"); }, {"missing end of comment tag"});
  expect_error([] { ChatTemplate("{% break %}"); }, {"'break' outside of a loop"});
  expect_error([] { ChatTemplate("{{ f(*args) }}"); }, {"*args and **kwargs in calls are not supported"});
  expect_error([] { ChatTemplate(std::string("bad \xff byte")); }, {"not valid UTF-8"});
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheTemplateMessage) {
  const ChatTemplate mistral = golden_template("mistral-7b-instruct-v0.1");
  const ordered_json messages =
      ordered_json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  expect_error([&] { mistral.render(messages, false); },
               {"[chat_template] error rendering mistral-7b-instruct-v0.1 at line 1: "
                "Conversation roles must alternate user/assistant/user/assistant/..."});
}

TEST(ChatTemplateErrors, UsingUndefinedRaisesLikeJinja2) {
  const ordered_json messages = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  // A missing attribute is undefined: empty and falsy...
  EXPECT_EQ(
      ChatTemplate("[{{ messages[0].missing }}]{{ messages[0].missing is defined }}").render(messages, false),
      "[]False");
  // ...and using it further raises.
  expect_error([&] { ChatTemplate("\n{{ messages[0].missing.deeper }}").render(messages, false); },
               {"line 2", "'dict object' has no attribute 'missing'"});
  expect_error([&] { ChatTemplate("{{ nothing + 1 }}").render(messages, false); },
               {"'nothing' is undefined"});
  expect_error([&] { ChatTemplate("{{ messages[0].content + 1 }}").render(messages, false); },
               {"can only concatenate str (not \"int\") to str"});
  expect_error([&] { ChatTemplate("{{ messages.append(1) }}").render(messages, false); },
               {"SecurityError", "'append'", "unsafe"});
}

TEST(ChatTemplateErrors, BadArguments) {
  const ChatTemplate chat_template("{{ messages|length }}");
  expect_error([&] { chat_template.render(ordered_json::object(), false); },
               {"messages must be a JSON array"});
  expect_error([&] { chat_template.render(ordered_json::array(), false, ordered_json::array()); },
               {"extra variables must be a JSON object"});
  expect_error(
      [&] {
        chat_template.render(ordered_json::array(), false, {{"messages", 1}});
      },
      {"extra variable 'messages' conflicts"});
  expect_error(
      [] {
        ChatTemplate("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").render(ordered_json::array(), false);
      },
      {"RecursionError"});
}

TEST(ChatTemplateRender, VariablesAsTransformersPassesThem) {
  const ChatTemplate with_tokens(
      "{{ bos_token }}|{{ eos_token }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}", "<s>",
      "</s>");
  EXPECT_EQ(with_tokens.render(ordered_json::array(), true), "<s>|</s>|None|None|True");
  // Unset special tokens are undefined, not empty strings.
  const ChatTemplate without("{{ bos_token is defined }}{{ eos_token is defined }}");
  EXPECT_EQ(without.render(ordered_json::array(), false), "FalseFalse");
  EXPECT_EQ(ChatTemplate("{{ tools|length }} {{ enable_thinking }}")
                .render(ordered_json::array(), false, {{"tools", {1, 2}}, {"enable_thinking", false}}),
            "2 False");
}

TEST(ChatTemplateRender, StrftimeNowIsLocalTime) {
  const auto today = [] {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[32];
    return std::string(buffer, std::strftime(buffer, sizeof(buffer), "%d %b %Y", &local));
  };
  const std::string before = today();
  const std::string rendered =
      ChatTemplate("{{ strftime_now('%d %b %Y') }}").render(ordered_json::array(), false);
  const std::string after = today();
  EXPECT_TRUE(rendered == before || rendered == after) << rendered;
}

TEST(ChatTemplateRender, ConcurrentRendersAgree) {
  const ChatTemplate chat_template = golden_template("qwen3");
  const ordered_json& messages = golden()["conversations"]["thinking"];
  const std::string expected = chat_template.render(messages, true);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if (chat_template.render(messages, true) != expected) ++mismatches;
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
