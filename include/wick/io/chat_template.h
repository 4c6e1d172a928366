// Chat templates: the Jinja template a model ships (chat_template.jinja, or "chat_template" in
// tokenizer_config.json) that turns a conversation into the prompt text. render() gives the text that
// transformers' apply_chat_template(..., tokenize=False) gives: the same Jinja subset and semantics as
// jinja2's ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, transformers' `tojson` filter
// (json.dumps with ensure_ascii=False) and its raise_exception / strftime_now globals.
//
// Supported: {{ }}, {% if / elif / else %}, {% for %} (with an `if` clause, `else`, loop.index / index0 /
// revindex / first / last / length / previtem / nextitem / cycle, break / continue), {% set %} (names,
// unpacking, namespace attributes, block sets), namespace(), {% macro %} and {% call %}, {% filter %},
// {% raw %}, {% generation %}, comments, `-` / `+` whitespace control; Python expressions, slicing,
// str / dict / list methods, and jinja2's common filters and tests. Not supported: template inheritance and
// includes, recursive loops, *args / **kwargs in calls, printf-style `%` formatting, str.format, lists or
// dicts holding macros or namespaces. Tuples are lists, so printing one shows [a, b] where Python shows (a,
// b).
//
// Every problem raises one wick::Error starting with "[chat_template]": syntax errors when the template is
// constructed (with line, column and the text near them), render errors with the template line, and the
// message of the template's own raise_exception().
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace wick::io {

// Parsed once, immutable after: copies share the parsed template and render() may run on many threads.
class ChatTemplate {
 public:
  // `path` is a model directory, a chat_template.jinja file, or a tokenizer_config.json file. A directory's
  // chat_template.jinja wins over its tokenizer_config.json "chat_template", which is a string or a list of
  // {"name", "template"} (the one named "default" is used). bos_token and eos_token come from
  // tokenizer_config.json (a string or an {"content": ...} object) when there is one.
  static ChatTemplate load(const std::filesystem::path& path);

  // `label` names the template in error messages. An empty bos or eos token is left undefined in the
  // template, as transformers leaves an unset special token.
  explicit ChatTemplate(std::string source, std::string bos_token = "", std::string eos_token = "",
                        std::string label = "chat template");

  // `messages` is the conversation: a list of {"role", "content", ...} objects (tool_calls, reasoning_content
  // and anything else the template reads). `extra_variables` are further template variables, such as "tools"
  // (a list of JSON schemas), "documents", "enable_thinking" or "date_string"; "tools" and "documents" are
  // None when not given, as in transformers. Key order is kept (ordered_json) because `tojson` prints keys in
  // order; convert an nlohmann::json with nlohmann::ordered_json(value) (its keys are already sorted).
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_variables = nlohmann::ordered_json::object()) const;

  const std::string& source() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace wick::io
