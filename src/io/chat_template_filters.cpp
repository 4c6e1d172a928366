// jinja2's filters and tests, as templates call them.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <unordered_map>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

Value list_of(const std::vector<Value>& items) {
  Json list = Json::array();
  for (const auto& item : items) list.push_back(item.to_json());
  return Value(std::move(list));
}

bool is_int(const Value& value) {
  return value.is_json() && value.json().is_number_integer();
}

// jinja2's make_attrgetter: "a.b.0" looks up each part as an item (then as an attribute).
Value lookup_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  Value value = item;
  for (const auto& part : split(attribute.str(), std::string_view("."), -1, false)) {
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    value = get_item(value, digits ? Value(Json(std::stoll(part))) : make_string(part));
    if (value.is_undefined()) break;
  }
  return value;
}

// Sort key that ignores case unless asked not to (jinja2's default for sort, unique, min, max).
Value fold_case(const Value& value, bool case_sensitive) {
  if (case_sensitive || !value.is_string()) return value;
  return make_string(to_lower(value.str()));
}

// ---- Filters ----

using FilterFn = Value (*)(const Value&, CallArgs&, Frame&);

Value filter_tojson(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonFormat format;
  format.ensure_ascii = p.flag(0, false);
  if (p.given(1)) {
    const Value& indent = *p[1];
    if (indent.is_string()) {
      format.indent = indent.str();
    } else if (const auto n = as_number(indent); n && !n->is_float) {
      format.indent = std::string(static_cast<size_t>(std::max<int64_t>(n->integer, 0)), ' ');
    } else {
      failure("TypeError: tojson indent must be an integer or a string, got {}", type_name(indent));
    }
  }
  if (p.given(2)) {
    const std::vector<Value> parts = iterate(*p[2]);
    if (parts.size() != 2 || !parts[0].is_string() || !parts[1].is_string())
      failure("TypeError: tojson separators must be two strings");
    format.separators = std::make_pair(parts[0].str(), parts[1].str());
  }
  format.sort_keys = p.flag(3, false);
  return make_string(to_json_text(input, format));
}

Value filter_default(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "default", {"default_value", "boolean"});
  if (input.is_undefined() || (p.flag(1, false) && !truthy(input))) return p.get(0, make_string(""));
  return input;
}

Value filter_length(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "length", {});
  return Value(Json(static_cast<int64_t>(length(input))));
}

Value filter_trim(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "trim", {"chars"});
  std::optional<std::string> chars;
  if (p.given(0)) chars = p.string(0, "trim chars");
  return make_string(
      strip(to_str(input), StripSide::both, chars ? std::optional<std::string_view>(*chars) : std::nullopt));
}

Value filter_upper(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "upper", {});
  return make_string(to_upper(to_str(input)));
}

Value filter_lower(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "lower", {});
  return make_string(to_lower(to_str(input)));
}

Value filter_capitalize(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "capitalize", {});
  return make_string(capitalize(to_str(input)));
}

Value filter_title(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "title", {});
  return make_string(jinja_title(to_str(input)));
}

Value filter_string(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "string", {});
  return make_string(to_str(input));
}

Value filter_safe(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "safe", {});
  return input;
}

Value filter_escape(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "escape", {});
  std::string out;
  for (const char c : to_str(input)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return make_string(std::move(out));
}

Value filter_join(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "join", {"d", "attribute"});
  const std::string separator = p[0] ? to_str(*p[0]) : "";
  std::string out;
  bool first = true;
  for (const auto& item : iterate(input)) {
    if (!first) out += separator;
    first = false;
    out += to_str(p.given(1) ? lookup_path(item, *p[1]) : item);
  }
  return make_string(std::move(out));
}

Value filter_first(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "first", {});
  const std::vector<Value> items = iterate(input);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value filter_last(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "last", {});
  const std::vector<Value> items = iterate(input);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value items_of(const Value& input) {
  if (input.is_undefined()) return Value(Json::array());
  if (!input.is_json() || !input.json().is_object())
    failure("TypeError: Can only get item pairs from a mapping.");
  Json pairs = Json::array();
  for (const auto& [key, member] : input.json().items()) pairs.push_back(Json::array({key, member}));
  return Value(std::move(pairs));
}

Value filter_items(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "items", {});
  return items_of(input);
}

Value filter_list(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "list", {});
  return list_of(iterate(input));
}

Value filter_replace(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "replace", {"old", "new", "count"});
  if (!p[0] || !p[1]) failure("TypeError: replace needs the old and the new text");
  return make_string(replace(to_str(input), to_str(*p[0]), to_str(*p[1]), p.integer(2, -1, "replace count")));
}

Value filter_indent(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "indent", {"width", "first", "blank"});
  std::string indention(4, ' ');
  if (p[0])
    indention =
        p[0]->is_string()
            ? p[0]->str()
            : std::string(static_cast<size_t>(std::max<int64_t>(p.integer(0, 4, "indent width"), 0)), ' ');
  const std::vector<std::string> lines = split_lines(to_str(input) + "\n", false);
  std::string out;
  const bool blank = p.flag(2, false);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out.push_back('\n');
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
  }
  if (p.flag(1, false)) out = indention + out;
  return make_string(std::move(out));
}

Value filter_int(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "int", {"default", "base"});
  if (input.is_undefined()) fail_undefined(input);  // int(Undefined) raises in jinja2
  const Value fallback = p.get(0, Value(Json(0)));
  if (const auto n = as_number(input))
    return Value(Json(n->is_float ? static_cast<int64_t>(std::trunc(n->real)) : n->integer));
  if (!input.is_string()) return fallback;
  const std::string s = strip(input.str(), StripSide::both, std::nullopt);
  const int base = static_cast<int>(p.integer(1, 10, "int base"));
  if (s.empty()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long integer = std::strtoll(s.c_str(), &end, base);
  if (errno == 0 && end == s.c_str() + s.size()) return Value(Json(static_cast<int64_t>(integer)));
  const double real = std::strtod(s.c_str(), &end);
  if (end == s.c_str() + s.size() && std::isfinite(real))
    return Value(Json(static_cast<int64_t>(std::trunc(real))));
  return fallback;
}

Value filter_float(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "float", {"default"});
  if (input.is_undefined()) fail_undefined(input);
  if (const auto n = as_number(input)) return Value(Json(n->as_double()));
  if (input.is_string()) {
    const std::string s = strip(input.str(), StripSide::both, std::nullopt);
    char* end = nullptr;
    const double real = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value(Json(real));
  }
  return p.get(0, Value(Json(0.0)));
}

Value filter_abs(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "abs", {});
  const auto n = as_number(input);
  if (!n) failure("TypeError: bad operand type for abs(): '{}'", type_name(input));
  return n->is_float ? Value(Json(std::fabs(n->real)))
                     : Value(Json(n->integer < 0 ? -n->integer : n->integer));
}

Value filter_round(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "round", {"precision", "method"});
  const auto n = as_number(input);
  if (!n) failure("TypeError: round needs a number, got {}", type_name(input));
  const double scale = std::pow(10.0, static_cast<double>(p.integer(0, 0, "round precision")));
  const std::string method = p[1] ? p.string(1, "round method") : "common";
  const double x = n->as_double() * scale;
  double r = 0;
  if (method == "common")
    r = std::nearbyint(x);
  else if (method == "ceil")
    r = std::ceil(x);
  else if (method == "floor")
    r = std::floor(x);
  else
    failure("round method must be 'common', 'ceil' or 'floor'");
  return Value(Json(r / scale));
}

Value filter_reverse(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "reverse", {});
  if (input.is_string()) {
    std::u32string s = decode_utf8(input.str());
    std::reverse(s.begin(), s.end());
    return make_string(encode_utf8(s));
  }
  std::vector<Value> items = iterate(input);
  std::reverse(items.begin(), items.end());
  return list_of(items);
}

std::vector<Value> sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value* attribute) {
  const auto key = [&](const Value& item) {
    return fold_case(attribute ? lookup_path(item, *attribute) : item, case_sensitive);
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const int order = compare(key(a), key(b), "<");
    return reverse ? order > 0 : order < 0;
  });
  return items;
}

Value filter_sort(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "sort", {"reverse", "case_sensitive", "attribute"});
  return list_of(sorted(iterate(input), p.flag(0, false), p.flag(1, false), p.given(2) ? p[2] : nullptr));
}

Value filter_dictsort(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "dictsort", {"case_sensitive", "by", "reverse"});
  const Value pairs = items_of(input);
  const std::string by = p[1] ? p.string(1, "dictsort by") : "key";
  if (by != "key" && by != "value")
    failure("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
  const Value index(Json(by == "key" ? 0 : 1));
  return list_of(sorted(iterate(pairs), p.flag(2, false), p.flag(0, false), &index));
}

Value filter_unique(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "unique", {"case_sensitive", "attribute"});
  std::vector<Value> kept, keys;
  for (const auto& item : iterate(input)) {
    const Value key = fold_case(p.given(1) ? lookup_path(item, *p[1]) : item, p.flag(0, false));
    if (std::any_of(keys.begin(), keys.end(), [&](const Value& k) { return equals(k, key); })) continue;
    keys.push_back(key);
    kept.push_back(item);
  }
  return list_of(kept);
}

Value extreme(const Value& input, CallArgs& args, bool want_max) {
  const Params p(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  const std::vector<Value> items =
      sorted(iterate(input), want_max, p.flag(0, false), p.given(1) ? p[1] : nullptr);
  if (items.empty())
    return Value::undefined(
        fmt::format("No {} item, sequence was empty.", want_max ? "largest" : "smallest"));
  return items.front();
}

Value filter_max(const Value& input, CallArgs& args, Frame&) {
  return extreme(input, args, true);
}

Value filter_min(const Value& input, CallArgs& args, Frame&) {
  return extreme(input, args, false);
}

Value filter_sum(const Value& input, CallArgs& args, Frame&) {
  const Params p(args, "sum", {"attribute", "start"});
  Value total = p.get(1, Value(Json(0)));
  for (const auto& item : iterate(input))
    total = binary_op(BinaryOp::add, total, p.given(0) ? lookup_path(item, *p[0]) : item);
  return total;
}

Value filter_map(const Value& input, CallArgs& args, Frame& frame) {
  std::vector<Value> out;
  const auto attribute = std::find_if(args.keyword.begin(), args.keyword.end(),
                                      [](const auto& kw) { return kw.first == "attribute"; });
  if (args.positional.empty() && attribute != args.keyword.end()) {
    const Params p(args, "map", {"attribute", "default"});
    for (const auto& item : iterate(input)) {
      Value value = lookup_path(item, *p[0]);
      if (value.is_undefined() && p[1]) value = *p[1];
      out.push_back(std::move(value));
    }
    return list_of(out);
  }
  if (args.positional.empty() || !args.positional[0].is_string())
    failure("TypeError: map needs a filter name or attribute=");
  const std::string name = args.positional[0].str();
  if (!is_filter(name)) failure("no filter named '{}'", name);
  for (const auto& item : iterate(input)) {
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    out.push_back(apply_filter(name, item, std::move(rest), frame));
  }
  return list_of(out);
}

// select / reject / selectattr / rejectattr.
Value select_items(const Value& input, CallArgs& args, Frame& frame, bool by_attribute, bool keep) {
  size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) failure("TypeError: selectattr and rejectattr need an attribute name");
    attribute = args.positional[next++];
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) failure("TypeError: the test name must be a string");
    test = args.positional[next++].str();
    if (!is_test(*test)) failure("no test named '{}'", *test);
  }
  std::vector<Value> out;
  for (const auto& item : iterate(input)) {
    const Value subject = by_attribute ? lookup_path(item, attribute) : item;
    bool passed = false;
    if (test) {
      CallArgs rest;
      rest.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                             args.positional.end());
      rest.keyword = args.keyword;
      passed = apply_test(*test, subject, std::move(rest), frame);
    } else {
      passed = truthy(subject);
    }
    if (passed == keep) out.push_back(item);
  }
  return list_of(out);
}

Value filter_select(const Value& input, CallArgs& args, Frame& frame) {
  return select_items(input, args, frame, false, true);
}
Value filter_reject(const Value& input, CallArgs& args, Frame& frame) {
  return select_items(input, args, frame, false, false);
}
Value filter_selectattr(const Value& input, CallArgs& args, Frame& frame) {
  return select_items(input, args, frame, true, true);
}
Value filter_rejectattr(const Value& input, CallArgs& args, Frame& frame) {
  return select_items(input, args, frame, true, false);
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", filter_abs},
      {"capitalize", filter_capitalize},
      {"count", filter_length},
      {"d", filter_default},
      {"default", filter_default},
      {"dictsort", filter_dictsort},
      {"e", filter_escape},
      {"escape", filter_escape},
      {"first", filter_first},
      {"float", filter_float},
      {"indent", filter_indent},
      {"int", filter_int},
      {"items", filter_items},
      {"join", filter_join},
      {"last", filter_last},
      {"length", filter_length},
      {"list", filter_list},
      {"lower", filter_lower},
      {"map", filter_map},
      {"max", filter_max},
      {"min", filter_min},
      {"reject", filter_reject},
      {"rejectattr", filter_rejectattr},
      {"replace", filter_replace},
      {"reverse", filter_reverse},
      {"round", filter_round},
      {"safe", filter_safe},
      {"select", filter_select},
      {"selectattr", filter_selectattr},
      {"sort", filter_sort},
      {"string", filter_string},
      {"sum", filter_sum},
      {"title", filter_title},
      {"tojson", filter_tojson},
      {"trim", filter_trim},
      {"unique", filter_unique},
      {"upper", filter_upper},
  };
  return table;
}

// ---- Tests ----

using TestFn = bool (*)(const Value&, CallArgs&);

const Value& one_argument(const CallArgs& args, std::string_view test) {
  if (args.positional.size() != 1 || !args.keyword.empty())
    failure("TypeError: test '{}' takes one argument", test);
  return args.positional[0];
}

bool json_is(const Value& v, bool (Json::*predicate)() const noexcept) {
  return v.is_json() && (v.json().*predicate)();
}

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", [](const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, CallArgs&) { return json_is(v, &Json::is_boolean); }},
      {"true",
       [](const Value& v, CallArgs&) { return json_is(v, &Json::is_boolean) && v.json().get<bool>(); }},
      {"false",
       [](const Value& v, CallArgs&) { return json_is(v, &Json::is_boolean) && !v.json().get<bool>(); }},
      {"string", [](const Value& v, CallArgs&) { return v.is_string(); }},
      {"number", [](const Value& v, CallArgs&) { return as_number(v).has_value(); }},
      {"integer", [](const Value& v, CallArgs&) { return is_int(v); }},
      {"float", [](const Value& v, CallArgs&) { return json_is(v, &Json::is_number_float); }},
      {"mapping", [](const Value& v, CallArgs&) { return json_is(v, &Json::is_object); }},
      // jinja2's sequence and iterable tests accept Undefined (it has __len__ and __iter__).
      {"sequence",
       [](const Value& v, CallArgs&) {
         return v.is_undefined() || json_is(v, &Json::is_string) || json_is(v, &Json::is_array) ||
                json_is(v, &Json::is_object);
       }},
      {"iterable",
       [](const Value& v, CallArgs&) {
         return v.is_undefined() || json_is(v, &Json::is_string) || json_is(v, &Json::is_array) ||
                json_is(v, &Json::is_object);
       }},
      {"callable", [](const Value& v, CallArgs&) { return v.is_object() && v.object().callable(); }},
      {"odd",
       [](const Value& v, CallArgs&) {
         const auto n = as_number(v);
         if (!n || n->is_float) failure("TypeError: the odd test needs an integer");
         return n->integer % 2 != 0;
       }},
      {"even",
       [](const Value& v, CallArgs&) {
         const auto n = as_number(v);
         if (!n || n->is_float) failure("TypeError: the even test needs an integer");
         return n->integer % 2 == 0;
       }},
      {"divisibleby",
       [](const Value& v, CallArgs& a) {
         const auto n = as_number(v);
         const auto d = as_number(one_argument(a, "divisibleby"));
         if (!n || !d || n->is_float || d->is_float) failure("TypeError: divisibleby needs integers");
         if (d->integer == 0) failure("ZeroDivisionError: integer division or modulo by zero");
         return n->integer % d->integer == 0;
       }},
      {"eq", [](const Value& v, CallArgs& a) { return equals(v, one_argument(a, "eq")); }},
      {"equalto", [](const Value& v, CallArgs& a) { return equals(v, one_argument(a, "equalto")); }},
      {"==", [](const Value& v, CallArgs& a) { return equals(v, one_argument(a, "==")); }},
      {"ne", [](const Value& v, CallArgs& a) { return !equals(v, one_argument(a, "ne")); }},
      {"!=", [](const Value& v, CallArgs& a) { return !equals(v, one_argument(a, "!=")); }},
      {"lt", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "lt"), "<") < 0; }},
      {"lessthan",
       [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "lessthan"), "<") < 0; }},
      {"<", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "<"), "<") < 0; }},
      {"le", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "le"), "<=") <= 0; }},
      {"<=", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "<="), "<=") <= 0; }},
      {"gt", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "gt"), ">") > 0; }},
      {"greaterthan",
       [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "greaterthan"), ">") > 0; }},
      {">", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, ">"), ">") > 0; }},
      {"ge", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, "ge"), ">=") >= 0; }},
      {">=", [](const Value& v, CallArgs& a) { return compare(v, one_argument(a, ">="), ">=") >= 0; }},
      {"in", [](const Value& v, CallArgs& a) { return contains(one_argument(a, "in"), v); }},
      {"sameas",
       [](const Value& v, CallArgs& a) {
         const Value& other = one_argument(a, "sameas");
         if (v.is_object() || other.is_object()) return v.object_ptr() == other.object_ptr();
         if (v.is_undefined() || other.is_undefined()) return v.is_undefined() && other.is_undefined();
         const Json& x = v.json();
         const Json& y = other.json();
         // Containers are the same object only when they are; scalars stand for Python's cached small ints,
         // interned strings and the None / True / False singletons.
         if (x.is_array() || x.is_object()) return &x == &y;
         return x.type() == y.type() && x == y;
       }},
      {"lower",
       [](const Value& v, CallArgs&) {
         return v.is_string() && to_lower(v.str()) == v.str() && to_upper(v.str()) != v.str();
       }},
      {"upper",
       [](const Value& v, CallArgs&) {
         return v.is_string() && to_upper(v.str()) == v.str() && to_lower(v.str()) != v.str();
       }},
      {"escaped", [](const Value&, CallArgs&) { return false; }},
      {"filter", [](const Value& v, CallArgs&) { return v.is_string() && is_filter(v.str()); }},
      {"test", [](const Value& v, CallArgs&) { return v.is_string() && is_test(v.str()); }},
  };
  return table;
}

}  // namespace

bool is_filter(std::string_view name) {
  return filters().count(name) > 0;
}

bool is_test(std::string_view name) {
  return tests().count(name) > 0;
}

Value apply_filter(const std::string& name, const Value& input, CallArgs args, Frame& frame) {
  const auto it = filters().find(name);
  if (it == filters().end()) failure("no filter named '{}'", name);
  return it->second(input, args, frame);
}

bool apply_test(const std::string& name, const Value& input, CallArgs args, Frame&) {
  const auto it = tests().find(name);
  if (it == tests().end()) failure("no test named '{}'", name);
  return it->second(input, args);
}

}  // namespace wick::io::jinja
