// The Jinja subset behind ChatTemplate: values with Python semantics, the lexer, the syntax tree, the
// evaluator and the builtins (filters, tests, methods, globals). Shared by the chat_template*.cpp files only.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wick::io::jinja {

// Key order matters: Python dicts keep insertion order and `tojson` prints it.
using Json = nlohmann::ordered_json;

struct Location {
  int line = 1;
  int column = 1;
};

// A problem found while rendering, before the evaluator has attached the template line to it.
struct RenderFailure {
  std::string message;
  std::optional<Location> where;
};

[[noreturn]] void raise_failure(std::string message);

template <typename... Args>
[[noreturn]] void failure(fmt::format_string<Args...> format, Args&&... args) {
  raise_failure(fmt::format(format, std::forward<Args>(args)...));
}

// ---- Values (chat_template_value.cpp) ----

class Object;
struct Frame;

// What a template expression evaluates to: a JSON value (shared and immutable, so taking a member is a view
// and no copy), Jinja's Undefined (empty and falsy; using it further raises, as jinja2's default Undefined
// does), or an object with behaviour: a namespace, a macro, a function, the loop variable.
class Value {
 public:
  // Implicit: every JSON value and every object is a template value.
  Value() = default;  // undefined
  Value(Json json);
  Value(std::shared_ptr<Object> object) : object_(std::move(object)) {}
  static Value undefined(std::string hint) {
    Value value;
    value.hint_ = std::move(hint);
    return value;
  }
  static Value none() { return Value(Json()); }
  // A view of JSON the caller owns and keeps alive while the value is in use (one render).
  static Value borrow(const Json& json) {
    Value value;
    value.node_ = &json;
    return value;
  }

  bool is_undefined() const { return node_ == nullptr && object_ == nullptr; }
  bool is_json() const { return node_ != nullptr; }
  bool is_object() const { return object_ != nullptr; }
  const Json& json() const { return *node_; }
  Object& object() const { return *object_; }
  const std::shared_ptr<Object>& object_ptr() const { return object_; }
  // Why this value is undefined, for the error raised when it is used ("'x' is undefined").
  const std::string& undefined_hint() const { return hint_; }

  bool is_string() const { return is_json() && node_->is_string(); }
  bool is_none() const { return is_json() && node_->is_null(); }
  const std::string& str() const { return node_->get_ref<const std::string&>(); }

  // A member or element of this JSON value, sharing its storage.
  Value child(const Json& member) const {
    Value value;
    value.root_ = root_;
    value.node_ = &member;
    return value;
  }
  // The JSON value; undefined becomes null and objects raise (lists and dicts hold JSON only).
  Json to_json() const;

 private:
  std::shared_ptr<const Json> root_;
  const Json* node_ = nullptr;
  std::shared_ptr<Object> object_;
  std::string hint_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A value with behaviour (not JSON).
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  virtual Value attribute(const std::string& name) const;
  virtual void set_attribute(const std::string& name, Value value);
  virtual bool callable() const { return false; }
  virtual Value call(CallArgs args, Frame& frame);
  virtual std::string str() const;
};

// `namespace(...)`: the one mutable value, so that loops can carry state out (`{% set ns.x = ... %}`).
class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  Value attribute(const std::string& name) const override;
  void set_attribute(const std::string& name, Value value) override;
  std::string str() const override;
  void clear() { attributes_.clear(); }

 private:
  std::vector<std::pair<std::string, Value>> attributes_;
};

// A builtin global, a method bound to its receiver (`text.strip`), or a helper of the loop variable.
class Function : public Object {
 public:
  using Body = std::function<Value(CallArgs&, Frame&)>;
  Function(std::string name, Body body) : name_(std::move(name)), body_(std::move(body)) {}
  std::string type_name() const override { return "builtin_function_or_method"; }
  bool callable() const override { return true; }
  Value call(CallArgs args, Frame& frame) override { return body_(args, frame); }
  std::string str() const override { return "<built-in function " + name_ + ">"; }

 private:
  std::string name_;
  Body body_;
};

// Python's truth value, equality, ordering, str(), repr() and type names.
bool truthy(const Value& value);
bool equals(const Value& a, const Value& b);
// <0, 0, >0; raises for types Python cannot order.
int compare(const Value& a, const Value& b, std::string_view op);
std::string to_str(const Value& value);
std::string repr(const Value& value);
std::string type_name(const Value& value);
// Python's float repr ("1.0", "0.1", "1e-05", "1e+16").
std::string format_float(double value);

// json.dumps(value, ensure_ascii, indent, separators, sort_keys); an empty `indent` is None.
struct JsonFormat {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string to_json_text(const Value& value, const JsonFormat& format);

// Raises the error jinja2 raises when an undefined value is used.
[[noreturn]] void fail_undefined(const Value& value);

// Python's len() and iteration (list items, dict keys, string characters; undefined is empty).
size_t length(const Value& value);
std::vector<Value> iterate(const Value& value);

// Jinja's attribute and item lookup: `x.name` tries Python attributes (methods) before dict keys,
// `x[key]` tries keys before attributes; a miss gives undefined; any lookup on undefined raises.
Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

enum class BinaryOp { add, sub, mul, div, floordiv, mod, pow, concat };
Value binary_op(BinaryOp op, const Value& a, const Value& b);
Value negate(const Value& value, bool minus);
bool contains(const Value& container, const Value& item);

// Number view of an int, float or bool (Python's bool is an int).
struct Number {
  bool is_float = false;
  int64_t integer = 0;
  double real = 0;
  double as_double() const { return is_float ? real : static_cast<double>(integer); }
};
std::optional<Number> as_number(const Value& value);
Value make_number(const Number& number);

// ---- Python string operations on UTF-8 (chat_template_strings.cpp) ----

std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t c);
size_t code_point_count(std::string_view text);
bool is_space(char32_t c);  // str.isspace()
enum class StripSide { both, left, right };
// str.strip / lstrip / rstrip; without `chars`, whitespace.
std::string strip(std::string_view text, StripSide side, std::optional<std::string_view> chars);
std::vector<std::string> split(std::string_view text, std::optional<std::string_view> separator,
                               int64_t max_split, bool from_right);
std::vector<std::string> split_lines(std::string_view text, bool keep_ends);
std::string replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count);
std::string to_upper(std::string_view text);
std::string to_lower(std::string_view text);
std::string capitalize(std::string_view text);
std::string python_title(std::string_view text);  // str.title()
std::string jinja_title(std::string_view text);   // the `title` filter, which splits words differently
std::string repr_string(std::string_view text);

// ---- Lexer (chat_template_lexer.cpp) ----

enum class TokenKind {
  text,
  variable_begin,
  variable_end,
  block_begin,
  block_end,
  name,
  string,
  integer,
  floating,
  op,
  end,
};

struct Token {
  TokenKind kind;
  std::string value;  // text, name, operator, or the decoded string literal
  Location where;
  int64_t integer = 0;
  double real = 0;
};

// A problem in the template source, raised while lexing and parsing.
struct SyntaxError {
  Location where;
  std::string message;
};

std::vector<Token> lex(std::string_view source);

// ---- Syntax tree (built by chat_template_parser.cpp, evaluated by chat_template_eval.cpp) ----

class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value value) { variables_[name] = std::move(value); }

 private:
  std::unordered_map<std::string, Value> variables_;
  std::shared_ptr<Scope> parent_;
};

struct RenderState {
  std::shared_ptr<Scope> globals;
  int depth = 0;  // nested macro calls, bounded so that runaway recursion is an error, not a crash
  // Every namespace of the render, emptied at its end: namespaces holding each other would otherwise leak.
  std::vector<std::weak_ptr<Namespace>> namespaces;
};

struct Frame {
  RenderState& state;
  std::shared_ptr<Scope> scope;
  std::string& out;
};

struct Expr {
  Location where;
  virtual ~Expr() = default;
  virtual Value eval(Frame& frame) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  CallArgs eval(Frame& frame) const;
};

struct Literal : Expr {
  Value value;
  Value eval(Frame& frame) const override;
};
struct ListLiteral : Expr {
  std::vector<ExprPtr> items;
  Value eval(Frame& frame) const override;
};
struct DictLiteral : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Frame& frame) const override;
};
struct Name : Expr {
  std::string name;
  Value eval(Frame& frame) const override;
};
struct Attribute : Expr {
  ExprPtr object;
  std::string name;
  Value eval(Frame& frame) const override;
};
struct Subscript : Expr {
  ExprPtr object;
  ExprPtr index;
  Value eval(Frame& frame) const override;
};
struct Slice : Expr {
  ExprPtr object;
  ExprPtr start, stop, step;  // each may be null
  Value eval(Frame& frame) const override;
};
struct Call : Expr {
  ExprPtr callee;
  Arguments arguments;
  Value eval(Frame& frame) const override;
  // The same call with `caller` passed too ({% call %} blocks).
  Value eval_with_caller(Frame& frame, Value caller) const;
};
struct FilterExpr : Expr {
  ExprPtr operand;
  std::string name;
  Arguments arguments;
  Value eval(Frame& frame) const override;
};
struct TestExpr : Expr {
  ExprPtr operand;
  std::string name;
  Arguments arguments;
  bool negated = false;
  Value eval(Frame& frame) const override;
};
struct UnaryExpr : Expr {
  enum class Op { minus, plus, logical_not } op;
  ExprPtr operand;
  Value eval(Frame& frame) const override;
};
struct BinaryExpr : Expr {
  BinaryOp op;
  ExprPtr left, right;
  Value eval(Frame& frame) const override;
};
struct LogicalExpr : Expr {
  bool is_and;
  ExprPtr left, right;
  Value eval(Frame& frame) const override;
};
struct CompareExpr : Expr {
  enum class Op { eq, ne, lt, le, gt, ge, in, not_in };
  ExprPtr first;
  std::vector<std::pair<Op, ExprPtr>> rest;
  Value eval(Frame& frame) const override;
};
struct ConditionalExpr : Expr {
  ExprPtr condition, then, otherwise;  // otherwise may be null (undefined)
  Value eval(Frame& frame) const override;
};

// What a statement tells the enclosing loop.
enum class Flow { next, break_loop, continue_loop };

struct Stmt {
  Location where;
  virtual ~Stmt() = default;
  virtual Flow run(Frame& frame) const = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Runs statements in order, attaching the statement's line to errors raised without one.
Flow run_body(const Body& body, Frame& frame);

struct TextStmt : Stmt {
  std::string text;
  Flow run(Frame& frame) const override;
};
struct OutputStmt : Stmt {
  ExprPtr expr;
  Flow run(Frame& frame) const override;
};
struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body otherwise;
  Flow run(Frame& frame) const override;
};
struct ForStmt : Stmt {
  std::vector<std::string> targets;  // one name, or names to unpack each item into
  bool unpack = false;
  ExprPtr iterable;
  ExprPtr condition;  // may be null
  Body body;
  Body otherwise;
  Flow run(Frame& frame) const override;
};
// `name`, `a, b` (unpacking) or `ns.attr`.
struct AssignTarget {
  std::vector<std::string> names;
  bool unpack = false;
  std::string attribute;  // set for `ns.attr`
};
// One filter of a chain applied to a block's output ({% set x | trim %}, {% filter upper %}).
struct FilterCall {
  Location where;
  std::string name;
  Arguments arguments;
};
struct SetStmt : Stmt {
  AssignTarget target;
  ExprPtr value;
  Flow run(Frame& frame) const override;
};
struct SetBlockStmt : Stmt {
  AssignTarget target;
  std::vector<FilterCall> filters;
  Body body;
  Flow run(Frame& frame) const override;
};
struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> parameters;  // default may be null
  Body body;
  Location where;
};
struct MacroStmt : Stmt {
  MacroDef def;
  Flow run(Frame& frame) const override;
};
struct CallBlockStmt : Stmt {
  std::unique_ptr<Call> call;
  MacroDef caller;
  Flow run(Frame& frame) const override;
};
struct FilterBlockStmt : Stmt {
  std::vector<FilterCall> filters;
  Body body;
  Flow run(Frame& frame) const override;
};
struct LoopControlStmt : Stmt {
  bool is_break;
  Flow run(Frame& frame) const override;
};

// ---- Parser (chat_template_parser.cpp) ----

Body parse(const std::vector<Token>& tokens);

// ---- Builtins (chat_template_filters.cpp: filters, tests; chat_template_methods.cpp: methods, globals) ----

// Binds call arguments to parameter names the way Python does for a function with defaults.
class Params {
 public:
  Params(const CallArgs& args, std::string_view what, std::initializer_list<std::string_view> names)
      : names_(names), slots_(names.size(), nullptr) {
    if (args.positional.size() > names_.size())
      failure("TypeError: {} takes at most {} argument(s) ({} given)", what, names_.size(),
              args.positional.size());
    for (size_t i = 0; i < args.positional.size(); ++i) slots_[i] = &args.positional[i];
    for (const auto& [name, value] : args.keyword) {
      const auto it = std::find(names_.begin(), names_.end(), name);
      if (it == names_.end()) failure("TypeError: {} got an unexpected keyword argument '{}'", what, name);
      const auto i = static_cast<size_t>(it - names_.begin());
      if (slots_[i] != nullptr) failure("TypeError: {} got multiple values for argument '{}'", what, name);
      slots_[i] = &value;
    }
  }

  // The argument, or null when absent.
  const Value* operator[](size_t i) const { return slots_[i]; }
  Value get(size_t i, Value fallback) const { return slots_[i] ? *slots_[i] : std::move(fallback); }
  bool flag(size_t i, bool fallback) const { return slots_[i] ? truthy(*slots_[i]) : fallback; }
  bool given(size_t i) const { return slots_[i] != nullptr && !slots_[i]->is_none(); }
  int64_t integer(size_t i, int64_t fallback, std::string_view what) const {
    if (!given(i)) return fallback;
    const auto number = as_number(*slots_[i]);
    if (!number || number->is_float)
      failure("TypeError: {} expects an integer, got {}", what, type_name(*slots_[i]));
    return number->integer;
  }
  std::string string(size_t i, std::string_view what) const {
    if (!slots_[i] || !slots_[i]->is_string())
      failure("TypeError: {} expects a string, got {}", what, slots_[i] ? type_name(*slots_[i]) : "nothing");
    return slots_[i]->str();
  }

 private:
  std::vector<std::string_view> names_;
  std::vector<const Value*> slots_;
};

inline Value make_bool(bool value) {
  return Value(Json(value));
}

inline Value make_string(std::string value) {
  return Value(Json(std::move(value)));
}

bool is_filter(std::string_view name);
bool is_test(std::string_view name);
Value apply_filter(const std::string& name, const Value& input, CallArgs args, Frame& frame);
bool apply_test(const std::string& name, const Value& input, CallArgs args, Frame& frame);
// A Python method bound to a string, list or dict, or nullopt when the type has no such attribute.
std::optional<Value> bound_method(const Value& receiver, const std::string& name);
// The globals every render sees: range, namespace, dict, raise_exception, strftime_now.
void add_globals(Scope& scope);

}  // namespace wick::io::jinja
