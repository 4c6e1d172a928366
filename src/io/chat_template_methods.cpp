// Python's str, dict and list methods (the read-only ones: transformers renders in an
// ImmutableSandboxedEnvironment) and the template globals: range, namespace, dict, and transformers'
// raise_exception and strftime_now.
#include <algorithm>
#include <ctime>
#include <unordered_set>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

// ---- Methods ----

Value make_method(const Value& receiver, const std::string& name,
                  Value (*body)(const Value&, const std::string&, CallArgs&)) {
  return Value(std::make_shared<Function>(
      name, [receiver, name, body](CallArgs& args, Frame&) { return body(receiver, name, args); }));
}

[[noreturn]] void unsupported_method(const Value& receiver, const std::string& name) {
  failure("{}.{}() is not supported", type_name(receiver), name);
}

[[noreturn]] void unsafe_method(const Value& receiver, const std::string& name) {
  failure("SecurityError: access to attribute '{}' of '{}' object is unsafe.", name, type_name(receiver));
}

std::optional<std::string> optional_string(const Params& p, size_t i, std::string_view what) {
  if (!p.given(i)) return std::nullopt;
  return p.string(i, what);
}

// `prefix` may be a string or a tuple (list) of strings.
bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  const auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.str());
  if (affix.is_json() && affix.json().is_array()) {
    for (const auto& item : iterate(affix)) {
      if (!item.is_string()) failure("TypeError: startswith/endswith tuples must hold strings");
      if (one(item.str())) return true;
    }
    return false;
  }
  failure("TypeError: startswith/endswith need a string or a tuple of strings, got {}", type_name(affix));
}

Value string_method(const Value& receiver, const std::string& name, CallArgs& args) {
  const std::string& s = receiver.str();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Params p(args, name, {"chars"});
    const auto chars = optional_string(p, 0, name);
    const StripSide side = name == "strip"    ? StripSide::both
                           : name == "lstrip" ? StripSide::left
                                              : StripSide::right;
    return make_string(strip(s, side, chars ? std::optional<std::string_view>(*chars) : std::nullopt));
  }
  if (name == "split" || name == "rsplit") {
    const Params p(args, name, {"sep", "maxsplit"});
    const auto separator = optional_string(p, 0, name);
    Json parts = Json::array();
    for (auto& part : split(s, separator ? std::optional<std::string_view>(*separator) : std::nullopt,
                            p.integer(1, -1, name), name == "rsplit"))
      parts.push_back(std::move(part));
    return Value(std::move(parts));
  }
  if (name == "splitlines") {
    const Params p(args, name, {"keepends"});
    Json lines = Json::array();
    for (auto& line : split_lines(s, p.flag(0, false))) lines.push_back(std::move(line));
    return Value(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") {
    const Params p(args, name, {"affix"});
    if (!p[0]) failure("TypeError: {}() takes at least 1 argument", name);
    return make_bool(affix_matches(s, *p[0], name == "startswith"));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    const Params p(args, name, {});
    if (name == "upper") return make_string(to_upper(s));
    if (name == "lower") return make_string(to_lower(s));
    if (name == "title") return make_string(python_title(s));
    return make_string(capitalize(s));
  }
  if (name == "replace") {
    const Params p(args, name, {"old", "new", "count"});
    return make_string(replace(s, p.string(0, "replace old"), p.string(1, "replace new"),
                               p.integer(2, -1, "replace count")));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const Params p(args, name, {"sub"});
    const std::string sub = p.string(0, name);
    if (name == "count") {
      if (sub.empty()) return Value(Json(static_cast<int64_t>(code_point_count(s) + 1)));
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value(Json(n));
    }
    const size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") failure("ValueError: substring not found");
      return Value(Json(-1));
    }
    return Value(Json(static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, at)))));
  }
  if (name == "join") {
    const Params p(args, name, {"iterable"});
    if (!p[0]) failure("TypeError: join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const auto& item : iterate(*p[0])) {
      if (!item.is_string())
        failure("TypeError: sequence item: expected str instance, {} found", type_name(item));
      if (!first) out += s;
      first = false;
      out += item.str();
    }
    return make_string(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    const Params p(args, name, {});
    const std::u32string chars = decode_utf8(s);
    if (name == "islower") return make_bool(to_lower(s) == s && to_upper(s) != s);
    if (name == "isupper") return make_bool(to_upper(s) == s && to_lower(s) != s);
    if (chars.empty()) return make_bool(false);
    const auto all = [&](auto predicate) {
      return make_bool(std::all_of(chars.begin(), chars.end(), predicate));
    };
    if (name == "isspace") return all([](char32_t c) { return is_space(c); });
    const auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
    const auto alpha = [](char32_t c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c > 0x7F;
    };
    if (name == "isdigit") return all(digit);
    if (name == "isalpha") return all(alpha);
    return all([&](char32_t c) { return digit(c) || alpha(c); });
  }
  unsupported_method(receiver, name);
}

Value dict_method(const Value& receiver, const std::string& name, CallArgs& args) {
  const Json& dict = receiver.json();
  if (name == "get") {
    const Params p(args, name, {"key", "default"});
    if (!p[0]) failure("TypeError: get expected at least 1 argument, got 0");
    if (p[0]->is_string()) {
      const auto it = dict.find(p[0]->str());
      if (it != dict.end()) return receiver.child(*it);
    }
    return p.get(1, Value::none());
  }
  if (name == "items" || name == "keys" || name == "values") {
    const Params p(args, name, {});
    Json out = Json::array();
    for (const auto& [key, member] : dict.items()) {
      if (name == "items") out.push_back(Json::array({key, member}));
      if (name == "keys") out.push_back(key);
      if (name == "values") out.push_back(member);
    }
    return Value(std::move(out));
  }
  if (name == "copy") {
    const Params p(args, name, {});
    return receiver;
  }
  if (name == "fromkeys") unsupported_method(receiver, name);
  unsafe_method(receiver, name);
}

Value list_method(const Value& receiver, const std::string& name, CallArgs& args) {
  if (name == "count" || name == "index") {
    const Params p(args, name, {"value"});
    if (!p[0]) failure("TypeError: {}() takes exactly one argument", name);
    int64_t n = 0;
    for (const auto& item : iterate(receiver)) {
      if (equals(item, *p[0])) {
        if (name == "index") return Value(Json(n));
        ++n;
      } else if (name == "index") {
        ++n;
      }
    }
    if (name == "index") failure("ValueError: {} is not in list", repr(*p[0]));
    return Value(Json(n));
  }
  if (name == "copy") {
    const Params p(args, name, {});
    return receiver;
  }
  unsafe_method(receiver, name);
}

const std::unordered_set<std::string_view> kStringMethods = {
    "capitalize", "casefold",     "center",       "count",   "encode",     "endswith",    "expandtabs",
    "find",       "format",       "format_map",   "index",   "isalnum",    "isalpha",     "isascii",
    "isdecimal",  "isdigit",      "isidentifier", "islower", "isnumeric",  "isprintable", "isspace",
    "istitle",    "isupper",      "join",         "ljust",   "lower",      "lstrip",      "maketrans",
    "partition",  "removeprefix", "removesuffix", "replace", "rfind",      "rindex",      "rjust",
    "rpartition", "rsplit",       "rstrip",       "split",   "splitlines", "startswith",  "strip",
    "swapcase",   "title",        "translate",    "upper",   "zfill"};
const std::unordered_set<std::string_view> kDictMethods = {
    "clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"};
const std::unordered_set<std::string_view> kListMethods = {
    "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"};

// ---- Globals ----

Value global_range(CallArgs& args, Frame&) {
  const Params p(args, "range", {"start", "stop", "step"});
  int64_t start = 0, stop = 0, step = 1;
  if (!p[1]) {
    stop = p.integer(0, 0, "range");
  } else {
    start = p.integer(0, 0, "range");
    stop = p.integer(1, 0, "range");
    step = p.integer(2, 1, "range");
  }
  if (step == 0) failure("ValueError: range() arg 3 must not be zero");
  Json out = Json::array();
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    // jinja2's sandbox refuses ranges this long.
    if (out.size() >= 100000)
      failure("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    out.push_back(i);
  }
  return Value(std::move(out));
}

Value global_namespace(CallArgs& args, Frame& frame) {
  auto ns = std::make_shared<Namespace>();
  frame.state.namespaces.push_back(ns);
  for (const auto& initial : args.positional) {
    if (!initial.is_json() || !initial.json().is_object())
      failure("TypeError: namespace() takes a dict and keywords");
    for (const auto& [key, member] : initial.json().items()) ns->set_attribute(key, initial.child(member));
  }
  for (const auto& [name, value] : args.keyword) ns->set_attribute(name, value);
  return Value(std::move(ns));
}

Value global_dict(CallArgs& args, Frame&) {
  Json out = Json::object();
  for (const auto& initial : args.positional) {
    if (!initial.is_json() || !initial.json().is_object())
      failure("TypeError: dict() takes a dict and keywords");
    for (const auto& [key, member] : initial.json().items()) out[key] = member;
  }
  for (const auto& [name, value] : args.keyword) out[name] = value.to_json();
  return Value(std::move(out));
}

Value global_raise_exception(CallArgs& args, Frame&) {
  const Params p(args, "raise_exception", {"message"});
  raise_failure(p[0] ? to_str(*p[0]) : "");
}

Value global_strftime_now(CallArgs& args, Frame&) {
  const Params p(args, "strftime_now", {"format"});
  const std::string format = p.string(0, "strftime_now");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string out(64 + format.size() * 4, '\0');
  const size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
  out.resize(n);
  return make_string(std::move(out));
}

}  // namespace

std::optional<Value> bound_method(const Value& receiver, const std::string& name) {
  if (!receiver.is_json()) return std::nullopt;
  const Json& json = receiver.json();
  if (json.is_string() && kStringMethods.count(name)) return make_method(receiver, name, string_method);
  if (json.is_object() && kDictMethods.count(name)) return make_method(receiver, name, dict_method);
  if (json.is_array() && kListMethods.count(name)) return make_method(receiver, name, list_method);
  return std::nullopt;
}

void add_globals(Scope& scope) {
  const auto add = [&](const char* name, Function::Body body) {
    scope.set(name, Value(std::make_shared<Function>(name, std::move(body))));
  };
  add("range", global_range);
  add("namespace", global_namespace);
  add("dict", global_dict);
  add("raise_exception", global_raise_exception);
  add("strftime_now", global_strftime_now);
}

}  // namespace wick::io::jinja
