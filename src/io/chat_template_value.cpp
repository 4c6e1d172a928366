// Template values with Python's semantics, as jinja2 evaluates them: truth, equality, ordering, str() and
// repr(), json.dumps, len() and iteration, attribute and item lookup, slicing and arithmetic.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

// jinja2's object_type_repr, used in "has no attribute" messages.
std::string object_type_repr(const Value& value) {
  if (value.is_none()) return "None";
  return type_name(value) + " object";
}

bool is_integer(const Json& json) {
  return json.is_number_integer() || json.is_boolean();
}

int64_t integer_of(const Json& json) {
  if (json.is_boolean()) return json.get<bool>() ? 1 : 0;
  if (json.is_number_unsigned()) {
    const auto value = json.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      failure("OverflowError: {} is too large", value);
    return static_cast<int64_t>(value);
  }
  return json.get<int64_t>();
}

std::optional<int64_t> index_of(const Value& value) {
  if (!value.is_json() || !is_integer(value.json())) return std::nullopt;
  return integer_of(value.json());
}

std::string repr_json(const Json& json) {
  switch (json.type()) {
    case Json::value_t::string:
      return repr_string(json.get_ref<const std::string&>());
    case Json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < json.size(); ++i) {
        if (i > 0) out += ", ";
        out += repr_json(json[i]);
      }
      return out + "]";
    }
    case Json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, member] : json.items()) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(key) + ": " + repr_json(member);
      }
      return out + "}";
    }
    default:
      return to_str(Value(json));
  }
}

void append_json_string(std::string& out, std::string_view text, bool ensure_ascii) {
  out.push_back('"');
  for (const char32_t c : decode_utf8(text)) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E && c != 0x7F)) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            out.append(fmt::format("\\u{:04x}\\u{:04x}", static_cast<uint32_t>(0xD800 | (v >> 10)),
                                   static_cast<uint32_t>(0xDC00 | (v & 0x3FF))));
          } else {
            out.append(fmt::format("\\u{:04x}", static_cast<uint32_t>(c)));
          }
        } else {
          append_utf8(out, c);
        }
    }
  }
  out.push_back('"');
}

struct JsonWriter {
  const JsonFormat& format;
  std::string item_separator;
  std::string key_separator;
  std::string out;

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out.append(*format.indent);
  }

  void write(const Json& json, int level) {
    switch (json.type()) {
      case Json::value_t::null:
        out.append("null");
        return;
      case Json::value_t::boolean:
        out.append(json.get<bool>() ? "true" : "false");
        return;
      case Json::value_t::number_float: {
        const double value = json.get<double>();
        if (std::isnan(value))
          out.append("NaN");
        else if (std::isinf(value))
          out.append(value > 0 ? "Infinity" : "-Infinity");
        else
          out.append(format_float(value));
        return;
      }
      case Json::value_t::string:
        append_json_string(out, json.get_ref<const std::string&>(), format.ensure_ascii);
        return;
      case Json::value_t::array:
        if (json.empty()) {
          out.append("[]");
          return;
        }
        out.push_back('[');
        for (size_t i = 0; i < json.size(); ++i) {
          if (i > 0) out.append(item_separator);
          if (format.indent) newline(level + 1);
          write(json[i], level + 1);
        }
        if (format.indent) newline(level);
        out.push_back(']');
        return;
      case Json::value_t::object: {
        if (json.empty()) {
          out.append("{}");
          return;
        }
        std::vector<std::pair<const std::string*, const Json*>> members;
        for (const auto& [key, member] : json.items()) members.emplace_back(&key, &member);
        if (format.sort_keys)
          std::stable_sort(members.begin(), members.end(),
                           [](const auto& a, const auto& b) { return *a.first < *b.first; });
        out.push_back('{');
        for (size_t i = 0; i < members.size(); ++i) {
          if (i > 0) out.append(item_separator);
          if (format.indent) newline(level + 1);
          append_json_string(out, *members[i].first, format.ensure_ascii);
          out.append(key_separator);
          write(*members[i].second, level + 1);
        }
        if (format.indent) newline(level);
        out.push_back('}');
        return;
      }
      default:  // integers
        out.append(json.dump());
    }
  }
};

// Python's slice.indices(): the positions a [start:stop:step] slice visits in a sequence of `size`.
std::vector<size_t> slice_positions(size_t size, const Value& start_value, const Value& stop_value,
                                    const Value& step_value) {
  const auto bound = [](const Value& value) -> std::optional<int64_t> {
    if (value.is_undefined() || value.is_none()) return std::nullopt;
    const auto index = index_of(value);
    if (!index) failure("TypeError: slice indices must be integers or None");
    return index;
  };
  const auto length = static_cast<int64_t>(size);
  const int64_t step = bound(step_value).value_or(1);
  if (step == 0) failure("ValueError: slice step cannot be zero");
  const auto adjust = [&](std::optional<int64_t> index, int64_t fallback) {
    if (!index) return fallback;
    int64_t i = *index;
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(bound(start_value), step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(bound(stop_value), step < 0 ? -1 : length);
  std::vector<size_t> positions;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
    positions.push_back(static_cast<size_t>(i));
  return positions;
}

[[noreturn]] void unsupported_operands(std::string_view op, const Value& a, const Value& b) {
  failure("TypeError: unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

// a + b, a - b or a * b, raising where Python would grow a big integer.
int64_t checked(BinaryOp op, int64_t a, int64_t b) {
  int64_t r = 0;
  const bool overflow = op == BinaryOp::add   ? __builtin_add_overflow(a, b, &r)
                        : op == BinaryOp::sub ? __builtin_sub_overflow(a, b, &r)
                                              : __builtin_mul_overflow(a, b, &r);
  if (overflow) failure("OverflowError: integer result too large");
  return r;
}

Value arithmetic(BinaryOp op, const Number& x, const Number& y) {
  const bool real = x.is_float || y.is_float;
  switch (op) {
    case BinaryOp::add:
      if (real) return make_number({true, 0, x.as_double() + y.as_double()});
      return make_number({false, checked(op, x.integer, y.integer), 0});
    case BinaryOp::sub:
      if (real) return make_number({true, 0, x.as_double() - y.as_double()});
      return make_number({false, checked(op, x.integer, y.integer), 0});
    case BinaryOp::mul:
      if (real) return make_number({true, 0, x.as_double() * y.as_double()});
      return make_number({false, checked(op, x.integer, y.integer), 0});
    case BinaryOp::div:
      if (y.as_double() == 0) failure("ZeroDivisionError: division by zero");
      return make_number({true, 0, x.as_double() / y.as_double()});
    case BinaryOp::floordiv:
    case BinaryOp::mod: {
      if (y.as_double() == 0) failure("ZeroDivisionError: integer division or modulo by zero");
      if (real) {
        const double a = x.as_double(), b = y.as_double();
        double m = std::fmod(a, b);
        if (m != 0 && ((m < 0) != (b < 0))) m += b;
        if (op == BinaryOp::mod) return make_number({true, 0, m});
        return make_number({true, 0, std::round((a - m) / b)});
      }
      int64_t q = x.integer / y.integer;
      int64_t m = x.integer % y.integer;
      if (m != 0 && ((m < 0) != (y.integer < 0))) {
        m += y.integer;
        --q;
      }
      return make_number({false, op == BinaryOp::mod ? m : q, 0});
    }
    case BinaryOp::pow: {
      if (real || y.integer < 0) return make_number({true, 0, std::pow(x.as_double(), y.as_double())});
      int64_t result = 1;
      for (int64_t i = 0; i < y.integer; ++i) result = checked(BinaryOp::mul, result, x.integer);
      return make_number({false, result, 0});
    }
    case BinaryOp::concat:
      break;
  }
  failure("unsupported arithmetic");
}

Value repeat(const Value& sequence, int64_t times) {
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += sequence.str();
    return Value(Json(std::move(out)));
  }
  Json out = Json::array();
  for (int64_t i = 0; i < times; ++i)
    for (const auto& item : sequence.json()) out.push_back(item);
  return Value(std::move(out));
}

}  // namespace

void raise_failure(std::string message) {
  throw RenderFailure{std::move(message), std::nullopt};
}

// ---- Value ----

Value::Value(Json json) : root_(std::make_shared<const Json>(std::move(json))) {
  node_ = root_.get();
}

Json Value::to_json() const {
  if (is_json()) return *node_;
  if (is_undefined()) return Json();
  failure("TypeError: a {} cannot be stored in a list or dict", object_->type_name());
}

// ---- Objects ----

Value Object::attribute(const std::string& name) const {
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(), name));
}

void Object::set_attribute(const std::string&, Value) {
  failure("cannot assign attribute on non-namespace object");
}

Value Object::call(CallArgs, Frame&) {
  failure("TypeError: '{}' object is not callable", type_name());
}

std::string Object::str() const {
  return "<" + type_name() + " object>";
}

Value Namespace::attribute(const std::string& name) const {
  for (const auto& [key, value] : attributes_)
    if (key == name) return value;
  return Object::attribute(name);
}

void Namespace::set_attribute(const std::string& name, Value value) {
  for (auto& [key, existing] : attributes_) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  attributes_.emplace_back(name, std::move(value));
}

std::string Namespace::str() const {
  std::string out = "<Namespace {";
  for (size_t i = 0; i < attributes_.size(); ++i) {
    if (i > 0) out += ", ";
    out += repr_string(attributes_[i].first) + ": " + repr(attributes_[i].second);
  }
  return out + "}>";
}

// ---- Python semantics ----

std::string type_name(const Value& value) {
  if (value.is_undefined()) return "Undefined";
  if (value.is_object()) return value.object().type_name();
  switch (value.json().type()) {
    case Json::value_t::null:
      return "NoneType";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "int";
    case Json::value_t::number_float:
      return "float";
    case Json::value_t::string:
      return "str";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "dict";
    default:
      return "bytes";
  }
}

bool truthy(const Value& value) {
  if (value.is_undefined()) return false;
  if (value.is_object()) return true;
  const Json& json = value.json();
  switch (json.type()) {
    case Json::value_t::null:
      return false;
    case Json::value_t::boolean:
      return json.get<bool>();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return json.get<int64_t>() != 0;
    case Json::value_t::number_float:
      return json.get<double>() != 0;
    case Json::value_t::string:
      return !json.get_ref<const std::string&>().empty();
    default:
      return !json.empty();
  }
}

std::optional<Number> as_number(const Value& value) {
  if (!value.is_json()) return std::nullopt;
  const Json& json = value.json();
  if (json.is_number_float()) return Number{true, 0, json.get<double>()};
  if (json.is_number_unsigned() &&
      json.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return Number{true, 0, static_cast<double>(json.get<uint64_t>())};
  if (is_integer(json)) return Number{false, integer_of(json), 0};
  return std::nullopt;
}

Value make_number(const Number& number) {
  return number.is_float ? Value(Json(number.real)) : Value(Json(number.integer));
}

bool equals(const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_object() || b.is_object()) return a.object_ptr() == b.object_ptr();
  const auto x = as_number(a), y = as_number(b);
  if (x || y) {
    if (!x || !y) return false;
    if (!x->is_float && !y->is_float) return x->integer == y->integer;
    return x->as_double() == y->as_double();
  }
  const Json& p = a.json();
  const Json& q = b.json();
  if (p.type() != q.type()) return false;
  if (p.is_array()) {
    if (p.size() != q.size()) return false;
    for (size_t i = 0; i < p.size(); ++i)
      if (!equals(a.child(p[i]), b.child(q[i]))) return false;
    return true;
  }
  if (p.is_object()) {
    if (p.size() != q.size()) return false;
    for (const auto& [key, member] : p.items()) {
      const auto it = q.find(key);
      if (it == q.end() || !equals(a.child(member), b.child(*it))) return false;
    }
    return true;
  }
  return p == q;
}

int compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const auto x = as_number(a), y = as_number(b);
  if (x && y) {
    if (!x->is_float && !y->is_float) return x->integer < y->integer ? -1 : x->integer > y->integer ? 1 : 0;
    const double p = x->as_double(), q = y->as_double();
    return p < q ? -1 : p > q ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.str().compare(b.str()) < 0 ? -1 : a.str() == b.str() ? 0 : 1;
  if (a.is_json() && b.is_json() && a.json().is_array() && b.json().is_array()) {
    const Json& p = a.json();
    const Json& q = b.json();
    for (size_t i = 0; i < p.size() && i < q.size(); ++i) {
      if (equals(a.child(p[i]), b.child(q[i]))) continue;
      return compare(a.child(p[i]), b.child(q[i]), op);
    }
    return p.size() < q.size() ? -1 : p.size() > q.size() ? 1 : 0;
  }
  failure("TypeError: '{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b));
}

std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string_view text(buffer, static_cast<size_t>(result.ptr - buffer));
  const size_t e = text.find('e');
  std::string_view mantissa = text.substr(0, e);
  const int exponent = std::stoi(std::string(text.substr(e + 1)));
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (const char c : mantissa)
    if (c != '.') digits.push_back(c);
  // repr() switches to exponent notation outside 1e-4 <= |x| < 1e16.
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    return out + fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  const int point = exponent + 1;
  if (point <= 0) return sign + "0." + std::string(static_cast<size_t>(-point), '0') + digits;
  if (static_cast<size_t>(point) >= digits.size())
    return sign + digits + std::string(static_cast<size_t>(point) - digits.size(), '0') + ".0";
  return sign + digits.substr(0, static_cast<size_t>(point)) + "." +
         digits.substr(static_cast<size_t>(point));
}

std::string to_str(const Value& value) {
  if (value.is_undefined()) return "";
  if (value.is_object()) return value.object().str();
  const Json& json = value.json();
  switch (json.type()) {
    case Json::value_t::string:
      return json.get_ref<const std::string&>();
    case Json::value_t::null:
      return "None";
    case Json::value_t::boolean:
      return json.get<bool>() ? "True" : "False";
    case Json::value_t::number_float:
      return format_float(json.get<double>());
    case Json::value_t::array:
    case Json::value_t::object:
      return repr_json(json);
    default:
      return json.dump();
  }
}

std::string repr(const Value& value) {
  if (value.is_json()) return repr_json(value.json());
  if (value.is_undefined()) return "Undefined";
  return value.object().str();
}

std::string to_json_text(const Value& value, const JsonFormat& format) {
  if (!value.is_json()) failure("TypeError: Object of type {} is not JSON serializable", type_name(value));
  JsonWriter writer{format, format.indent ? "," : ", ", ": ", {}};
  if (format.separators) {
    writer.item_separator = format.separators->first;
    writer.key_separator = format.separators->second;
  }
  writer.write(value.json(), 0);
  return std::move(writer.out);
}

void fail_undefined(const Value& value) {
  failure("UndefinedError: {}",
          value.undefined_hint().empty() ? "value is undefined" : value.undefined_hint());
}

size_t length(const Value& value) {
  if (value.is_undefined()) return 0;
  if (value.is_json()) {
    const Json& json = value.json();
    if (json.is_string()) return code_point_count(json.get_ref<const std::string&>());
    if (json.is_array() || json.is_object()) return json.size();
  }
  failure("TypeError: object of type '{}' has no len()", type_name(value));
}

std::vector<Value> iterate(const Value& value) {
  std::vector<Value> items;
  if (value.is_undefined()) return items;
  if (value.is_json()) {
    const Json& json = value.json();
    if (json.is_array()) {
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(value.child(item));
      return items;
    }
    if (json.is_object()) {
      for (const auto& [key, member] : json.items()) items.emplace_back(Json(key));
      return items;
    }
    if (json.is_string()) {
      for (const char32_t c : decode_utf8(json.get_ref<const std::string&>())) {
        std::string character;
        append_utf8(character, c);
        items.emplace_back(Json(std::move(character)));
      }
      return items;
    }
  }
  failure("TypeError: '{}' object is not iterable", type_name(value));
}

Value get_attribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.is_object()) return object.object().attribute(name);
  if (auto method = bound_method(object, name)) return *method;
  const Json& json = object.json();
  if (json.is_object()) {
    const auto it = json.find(name);
    if (it != json.end()) return object.child(*it);
  }
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_type_repr(object), name));
}

Value get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.is_object()) {
    if (key.is_string()) return object.object().attribute(key.str());
    return Value::undefined(fmt::format("'{}' has no element {}", object_type_repr(object), repr(key)));
  }
  const Json& json = object.json();
  if (json.is_object() && key.is_string()) {
    const auto it = json.find(key.str());
    if (it != json.end()) return object.child(*it);
  }
  if (json.is_array() || json.is_string()) {
    if (const auto index = index_of(key)) {
      const auto size = static_cast<int64_t>(
          json.is_array() ? json.size() : code_point_count(json.get_ref<const std::string&>()));
      const int64_t i = *index < 0 ? *index + size : *index;
      if (i >= 0 && i < size) {
        if (json.is_array()) return object.child(json[static_cast<size_t>(i)]);
        std::string character;
        append_utf8(character, decode_utf8(json.get_ref<const std::string&>())[static_cast<size_t>(i)]);
        return Value(Json(std::move(character)));
      }
    }
  }
  if (key.is_string()) {
    if (auto method = bound_method(object, key.str())) return *method;
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_type_repr(object), key.str()));
  }
  return Value::undefined(fmt::format("'{}' has no element {}", object_type_repr(object), repr(key)));
}

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) fail_undefined(object);
  if (!object.is_json() || !(object.json().is_array() || object.json().is_string()))
    return Value::undefined(fmt::format("'{}' cannot be sliced", object_type_repr(object)));
  const Json& json = object.json();
  if (json.is_array()) {
    Json out = Json::array();
    for (const size_t i : slice_positions(json.size(), start, stop, step)) out.push_back(json[i]);
    return Value(std::move(out));
  }
  const std::u32string text = decode_utf8(json.get_ref<const std::string&>());
  std::string out;
  for (const size_t i : slice_positions(text.size(), start, stop, step)) append_utf8(out, text[i]);
  return Value(Json(std::move(out)));
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  if (op == BinaryOp::concat) return Value(Json(to_str(a) + to_str(b)));
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  static constexpr std::string_view kSymbols[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
  const std::string_view symbol = kSymbols[static_cast<int>(op)];
  const auto x = as_number(a), y = as_number(b);
  if (x && y) return arithmetic(op, *x, *y);
  const bool a_list = a.is_json() && a.json().is_array();
  const bool b_list = b.is_json() && b.json().is_array();
  if (op == BinaryOp::add) {
    if (a.is_string() && b.is_string()) return Value(Json(a.str() + b.str()));
    if (a_list && b_list) {
      Json out = a.json();
      for (const auto& item : b.json()) out.push_back(item);
      return Value(std::move(out));
    }
    if (a.is_string()) failure("TypeError: can only concatenate str (not \"{}\") to str", type_name(b));
    if (a_list) failure("TypeError: can only concatenate list (not \"{}\") to list", type_name(b));
  }
  if (op == BinaryOp::mul) {
    if ((a.is_string() || a_list) && y && !y->is_float) return repeat(a, y->integer);
    if ((b.is_string() || b_list) && x && !x->is_float) return repeat(b, x->integer);
  }
  if (op == BinaryOp::mod && a.is_string()) failure("printf-style string formatting ('%') is not supported");
  unsupported_operands(symbol, a, b);
}

Value negate(const Value& value, bool minus) {
  if (value.is_undefined()) fail_undefined(value);
  const auto number = as_number(value);
  if (!number) failure("TypeError: bad operand type for unary {}: '{}'", minus ? '-' : '+', type_name(value));
  if (!minus) return make_number(*number);
  if (number->is_float) return make_number({true, 0, -number->real});
  return make_number({false, checked(BinaryOp::sub, 0, number->integer), 0});
}

bool contains(const Value& container, const Value& item) {
  if (container.is_undefined()) return false;
  if (container.is_json()) {
    const Json& json = container.json();
    if (json.is_string()) {
      if (!item.is_string())
        failure("TypeError: 'in <string>' requires string as left operand, not {}", type_name(item));
      return json.get_ref<const std::string&>().find(item.str()) != std::string::npos;
    }
    if (json.is_array()) {
      for (const auto& element : json)
        if (equals(container.child(element), item)) return true;
      return false;
    }
    if (json.is_object()) return item.is_string() && json.contains(item.str());
  }
  failure("TypeError: argument of type '{}' is not iterable", type_name(container));
}

}  // namespace wick::io::jinja
