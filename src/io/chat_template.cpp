// ChatTemplate: finding a model's template and special tokens, parsing once, and rendering with the
// variables transformers' apply_chat_template passes.
#include "wick/io/chat_template.h"

#include <fstream>
#include <sstream>

#include "io/chat_template_internal.h"
#include "wick/error.h"

namespace wick::io {

struct ChatTemplate::Impl {
  std::string source;
  std::string bos_token;
  std::string eos_token;
  std::string label;
  jinja::Body body;
};

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("chat_template", "cannot open {}", path.string());
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

nlohmann::json read_json(const std::filesystem::path& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail("chat_template", "{} is not valid JSON: {}", path.string(), e.what());
  }
}

// A special token in tokenizer_config.json: a string, an AddedToken object {"content": ...}, or null.
std::string special_token(const nlohmann::json& config, const char* key, const std::filesystem::path& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("chat_template", "{}: \"{}\" must be a string or an object with a \"content\" string", path.string(),
       key);
}

// "chat_template" is a string, or a list of named templates of which "default" is the one rendered.
std::optional<std::string> config_template(const nlohmann::json& config, const std::filesystem::path& path) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::vector<std::string> names;
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string())
        fail("chat_template",
             "{}: \"chat_template\" list entries must be {{\"name\": string, \"template\": string}}",
             path.string());
      if (entry["name"] == "default") return entry["template"].get<std::string>();
      names.push_back(entry["name"].get<std::string>());
    }
    fail("chat_template", "{}: \"chat_template\" has no template named \"default\" (it has: {})",
         path.string(), fmt::join(names, ", "));
  }
  fail("chat_template", "{}: \"chat_template\" must be a string or a list of named templates, got {}",
       path.string(), it->type_name());
}

// jinja2 reads the source with \n line endings and drops one trailing newline (keep_trailing_newline=False).
std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The offset of the first byte that is not well-formed UTF-8, or npos.
size_t invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<uint8_t>(text[i]);
    size_t extra = 0;
    uint32_t min = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if (lead >= 0xC2 && lead < 0xE0) {
      extra = 1;
      min = 0x80;
    } else if (lead >= 0xE0 && lead < 0xF0) {
      extra = 2;
      min = 0x800;
    } else if (lead >= 0xF0 && lead < 0xF5) {
      extra = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + extra >= text.size()) return i;
    uint32_t c = lead & (0x3F >> extra);
    for (size_t k = 1; k <= extra; ++k) {
      const auto byte = static_cast<uint8_t>(text[i + k]);
      if ((byte & 0xC0) != 0x80) return i;
      c = (c << 6) | (byte & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
    i += extra + 1;
  }
  return std::string_view::npos;
}

// The text around `where` on its line, at most ~60 bytes, cut at character boundaries.
std::string excerpt(std::string_view source, jinja::Location where) {
  size_t begin = 0;
  for (int line = 1; line < where.line; ++line) {
    const size_t newline = source.find('\n', begin);
    if (newline == std::string_view::npos) break;
    begin = newline + 1;
  }
  size_t end = source.find('\n', begin);
  if (end == std::string_view::npos) end = source.size();
  const size_t column = std::min(begin + static_cast<size_t>(where.column - 1), end);
  size_t from = column > begin + 30 ? column - 30 : begin;
  size_t to = std::min(column + 30, end);
  const auto continuation = [&](size_t i) {
    return i < source.size() && (static_cast<uint8_t>(source[i]) & 0xC0) == 0x80;
  };
  while (from > begin && continuation(from)) --from;
  while (to < end && continuation(to)) ++to;
  std::string text(source.substr(from, to - from));
  if (from > begin) text = "..." + text;
  if (to < end) text += "...";
  return text;
}

}  // namespace

ChatTemplate ChatTemplate::load(const std::filesystem::path& path) {
  std::error_code ec;
  const bool is_directory = std::filesystem::is_directory(path, ec);
  if (!is_directory && !std::filesystem::exists(path, ec))
    fail("chat_template",
         "{} does not exist (expected a model directory, a chat_template.jinja or a "
         "tokenizer_config.json)",
         path.string());
  const std::filesystem::path directory = is_directory ? path : path.parent_path();
  const std::filesystem::path config_path =
      is_directory || path.extension() == ".jinja" ? directory / "tokenizer_config.json" : path;
  std::optional<nlohmann::json> config;
  if (std::filesystem::is_regular_file(config_path, ec)) {
    config = read_json(config_path);
    if (!config->is_object()) fail("chat_template", "{} must hold a JSON object", config_path.string());
  }
  std::string bos, eos;
  if (config) {
    bos = special_token(*config, "bos_token", config_path);
    eos = special_token(*config, "eos_token", config_path);
  }
  if (!is_directory && path.extension() == ".jinja")
    return ChatTemplate(read_file(path), std::move(bos), std::move(eos), path.string());
  if (is_directory) {
    const std::filesystem::path jinja_path = directory / "chat_template.jinja";
    if (std::filesystem::is_regular_file(jinja_path, ec))
      return ChatTemplate(read_file(jinja_path), std::move(bos), std::move(eos), jinja_path.string());
    // Processors save their template as chat_template.json: {"chat_template": "..."}.
    const std::filesystem::path json_path = directory / "chat_template.json";
    if (std::filesystem::is_regular_file(json_path, ec)) {
      const nlohmann::json processor = read_json(json_path);
      if (!processor.is_object()) fail("chat_template", "{} must hold a JSON object", json_path.string());
      if (auto source = config_template(processor, json_path))
        return ChatTemplate(std::move(*source), std::move(bos), std::move(eos), json_path.string());
    }
    if (!config)
      fail("chat_template", "{} has no chat template: no chat_template.jinja and no tokenizer_config.json",
           directory.string());
  }
  if (auto source = config_template(*config, config_path))
    return ChatTemplate(std::move(*source), std::move(bos), std::move(eos),
                        config_path.string() + " chat_template");
  fail("chat_template", "{} has no \"chat_template\"{}", config_path.string(),
       is_directory ? " and there is no chat_template.jinja beside it" : "");
}

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token,
                           std::string label) {
  auto impl = std::make_shared<Impl>();
  if (const size_t bad = invalid_utf8(source); bad != std::string::npos)
    fail("chat_template", "{} is not valid UTF-8 (byte {})", label, bad);
  const std::string normalized = normalize_source(source);
  impl->source = std::move(source);
  impl->bos_token = std::move(bos_token);
  impl->eos_token = std::move(eos_token);
  impl->label = std::move(label);
  try {
    impl->body = jinja::parse(jinja::lex(normalized));
  } catch (const jinja::SyntaxError& e) {
    fail("chat_template", "syntax error in {} at line {}, column {}: {} (near \"{}\")", impl->label,
         e.where.line, e.where.column, e.message, excerpt(normalized, e.where));
  }
  impl_ = std::move(impl);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_variables) const {
  using jinja::Json;
  using jinja::Value;
  if (!messages.is_array())
    fail("chat_template", "messages must be a JSON array, got {}", messages.type_name());
  if (!extra_variables.is_object())
    fail("chat_template", "extra variables must be a JSON object, got {}", extra_variables.type_name());
  jinja::RenderState state;
  state.globals = std::make_shared<jinja::Scope>(nullptr);
  jinja::add_globals(*state.globals);
  auto scope = std::make_shared<jinja::Scope>(state.globals);
  scope->set("messages", Value::borrow(messages));
  scope->set("add_generation_prompt", Value(Json(add_generation_prompt)));
  scope->set("tools", Value::none());
  scope->set("documents", Value::none());
  if (!impl_->bos_token.empty()) scope->set("bos_token", Value(Json(impl_->bos_token)));
  if (!impl_->eos_token.empty()) scope->set("eos_token", Value(Json(impl_->eos_token)));
  for (const auto& [name, value] : extra_variables.items()) {
    if (name == "messages" || name == "add_generation_prompt")
      fail("chat_template", "extra variable '{}' conflicts with the render() argument of that name", name);
    scope->set(name, Value::borrow(value));
  }
  std::string out;
  jinja::Frame frame{state, scope, out};
  struct ReleaseNamespaces {
    jinja::RenderState& state;
    ~ReleaseNamespaces() {
      for (const auto& weak : state.namespaces)
        if (const auto ns = weak.lock()) ns->clear();
    }
  } release{state};
  try {
    jinja::run_body(impl_->body, frame);
  } catch (const jinja::RenderFailure& e) {
    if (e.where)
      fail("chat_template", "error rendering {} at line {}: {}", impl_->label, e.where->line, e.message);
    fail("chat_template", "error rendering {}: {}", impl_->label, e.message);
  } catch (const nlohmann::json::exception& e) {
    fail("chat_template", "error rendering {}: {}", impl_->label, e.what());
  }
  return out;
}

const std::string& ChatTemplate::source() const {
  return impl_->source;
}

const std::string& ChatTemplate::bos_token() const {
  return impl_->bos_token;
}

const std::string& ChatTemplate::eos_token() const {
  return impl_->eos_token;
}

}  // namespace wick::io
