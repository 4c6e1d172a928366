// The evaluator: expressions to values and statements to output, with jinja2's scoping (each loop iteration
// and each macro call gets a fresh scope; `if` shares its enclosing one) and the `loop` and macro objects.
#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

constexpr int kMaxMacroDepth = 100;

// The `loop` variable of a for loop.
class LoopInfo : public Object, public std::enable_shared_from_this<LoopInfo> {
 public:
  explicit LoopInfo(std::vector<Value> items) : items_(std::move(items)) {}
  std::string type_name() const override { return "LoopContext"; }
  void set_index(size_t index) { index_ = index; }

  Value attribute(const std::string& name) const override {
    const auto n = static_cast<int64_t>(items_.size());
    const auto i = static_cast<int64_t>(index_);
    if (name == "index") return Value(Json(i + 1));
    if (name == "index0") return Value(Json(i));
    if (name == "revindex") return Value(Json(n - i));
    if (name == "revindex0") return Value(Json(n - i - 1));
    if (name == "first") return Value(Json(i == 0));
    if (name == "last") return Value(Json(i == n - 1));
    if (name == "length") return Value(Json(n));
    if (name == "depth") return Value(Json(1));
    if (name == "depth0") return Value(Json(0));
    if (name == "previtem") return i > 0 ? items_[index_ - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < n ? items_[index_ + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
      const size_t index = index_;
      return Value(std::make_shared<Function>("cycle", [index](CallArgs& args, Frame&) {
        if (args.positional.empty()) failure("TypeError: no items for cycling given");
        return args.positional[index % args.positional.size()];
      }));
    }
    if (name == "changed") {
      return Value(std::make_shared<Function>("changed", [self = shared_from_this()](CallArgs& args, Frame&) {
        Json current = Json::array();
        for (const auto& value : args.positional) current.push_back(value.to_json());
        const bool changed = !self->last_changed_ || *self->last_changed_ != current;
        self->last_changed_ = std::move(current);
        return Value(Json(changed));
      }));
    }
    return Object::attribute(name);
  }

  std::string str() const override {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_.size()) + ">";
  }

 private:
  std::vector<Value> items_;
  size_t index_ = 0;
  mutable std::optional<Json> last_changed_;  // the arguments of the last loop.changed() call
};

struct DepthGuard {
  explicit DepthGuard(int& depth) : depth_(depth) { ++depth_; }
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  int& depth_;
};

// A macro (or the `caller` of a call block) bound to the scope it was defined in.
class Macro : public Object {
 public:
  Macro(const MacroDef& def, const std::shared_ptr<Scope>& closure) : def_(def), closure_(closure) {}
  std::string type_name() const override { return "Macro"; }
  bool callable() const override { return true; }
  std::string str() const override { return "<Macro '" + def_.name + "'>"; }

  Value call(CallArgs args, Frame& frame) override {
    if (frame.state.depth >= kMaxMacroDepth)
      failure("RecursionError: macro calls nested more than {} deep", kMaxMacroDepth);
    std::shared_ptr<Scope> closure = closure_.lock();
    if (!closure) failure("macro '{}' was called after the block that defined it ended", def_.name);
    auto scope = std::make_shared<Scope>(std::move(closure));
    const size_t count = def_.parameters.size();
    if (args.positional.size() > count) {
      Json extra = Json::array();
      for (size_t i = count; i < args.positional.size(); ++i) extra.push_back(args.positional[i].to_json());
      scope->set("varargs", Value(std::move(extra)));
    } else {
      scope->set("varargs", Value(Json::array()));
    }
    std::vector<bool> bound(count, false);
    for (size_t i = 0; i < count && i < args.positional.size(); ++i) {
      scope->set(def_.parameters[i].first, args.positional[i]);
      bound[i] = true;
    }
    Json extra_keywords = Json::object();
    for (auto& [name, value] : args.keyword) {
      size_t k = 0;
      while (k < count && def_.parameters[k].first != name) ++k;
      if (k < count) {
        if (bound[k]) failure("TypeError: macro '{}' got multiple values for argument '{}'", def_.name, name);
        scope->set(name, std::move(value));
        bound[k] = true;
      } else if (name == "caller") {
        scope->set("caller", std::move(value));
      } else {
        extra_keywords[name] = value.to_json();
      }
    }
    scope->set("kwargs", Value(std::move(extra_keywords)));
    std::string out;
    const DepthGuard guard(frame.state.depth);
    Frame inner{frame.state, scope, out};
    for (size_t k = 0; k < count; ++k) {
      if (bound[k]) continue;
      const auto& [name, fallback] = def_.parameters[k];
      scope->set(name, fallback ? fallback->eval(inner)
                                : Value::undefined(fmt::format("parameter '{}' was not provided", name)));
    }
    run_body(def_.body, inner);
    return Value(Json(std::move(out)));
  }

 private:
  const MacroDef& def_;
  // Weak: the macro usually lives in that very scope, and a strong reference would be a cycle.
  std::weak_ptr<Scope> closure_;
};

void assign(const AssignTarget& target, const Value& value, Frame& frame) {
  if (!target.attribute.empty()) {
    const Value* object = frame.scope->find(target.names[0]);
    if (object == nullptr || !object->is_object())
      failure("cannot assign attribute '{}' on non-namespace object '{}'", target.attribute, target.names[0]);
    object->object().set_attribute(target.attribute, value);
    return;
  }
  if (!target.unpack) {
    frame.scope->set(target.names[0], value);
    return;
  }
  const std::vector<Value> items = iterate(value);
  if (items.size() != target.names.size()) {
    if (items.size() > target.names.size())
      failure("ValueError: too many values to unpack (expected {})", target.names.size());
    failure("ValueError: not enough values to unpack (expected {}, got {})", target.names.size(),
            items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) frame.scope->set(target.names[i], items[i]);
}

Value apply_filters(const std::vector<FilterCall>& filters, Value value, Frame& frame) {
  for (const auto& filter : filters) {
    try {
      value = apply_filter(filter.name, value, filter.arguments.eval(frame), frame);
    } catch (RenderFailure& e) {
      if (!e.where) e.where = filter.where;
      throw;
    }
  }
  return value;
}

}  // namespace

const Value* Scope::find(const std::string& name) const {
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_.get()) {
    const auto it = scope->variables_.find(name);
    if (it != scope->variables_.end()) return &it->second;
  }
  return nullptr;
}

CallArgs Arguments::eval(Frame& frame) const {
  CallArgs args;
  args.positional.reserve(positional.size());
  for (const auto& expr : positional) args.positional.push_back(expr->eval(frame));
  for (const auto& [name, expr] : keyword) args.keyword.emplace_back(name, expr->eval(frame));
  return args;
}

// ---- Expressions ----

Value Literal::eval(Frame&) const {
  return value;
}

Value ListLiteral::eval(Frame& frame) const {
  Json list = Json::array();
  for (const auto& item : items) list.push_back(item->eval(frame).to_json());
  return Value(std::move(list));
}

Value DictLiteral::eval(Frame& frame) const {
  Json dict = Json::object();
  for (const auto& [key_expr, value_expr] : items) {
    const Value key = key_expr->eval(frame);
    if (!key.is_string()) failure("TypeError: dict keys must be strings here, got {}", type_name(key));
    dict[key.str()] = value_expr->eval(frame).to_json();
  }
  return Value(std::move(dict));
}

Value Name::eval(Frame& frame) const {
  if (const Value* value = frame.scope->find(name)) return *value;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

Value Attribute::eval(Frame& frame) const {
  return get_attribute(object->eval(frame), name);
}

Value Subscript::eval(Frame& frame) const {
  const Value container = object->eval(frame);
  return get_item(container, index->eval(frame));
}

Value Slice::eval(Frame& frame) const {
  const Value container = object->eval(frame);
  const auto bound = [&](const ExprPtr& expr) { return expr ? expr->eval(frame) : Value::none(); };
  return get_slice(container, bound(start), bound(stop), bound(step));
}

Value Call::eval(Frame& frame) const {
  return eval_with_caller(frame, Value());
}

Value Call::eval_with_caller(Frame& frame, Value caller) const {
  const Value function = callee->eval(frame);
  CallArgs args = arguments.eval(frame);
  if (!caller.is_undefined()) args.keyword.emplace_back("caller", std::move(caller));
  if (function.is_undefined()) fail_undefined(function);
  if (!function.is_object() || !function.object().callable())
    failure("TypeError: '{}' object is not callable", type_name(function));
  return function.object().call(std::move(args), frame);
}

Value FilterExpr::eval(Frame& frame) const {
  const Value input = operand->eval(frame);
  return apply_filter(name, input, arguments.eval(frame), frame);
}

Value TestExpr::eval(Frame& frame) const {
  const Value input = operand->eval(frame);
  const bool result = apply_test(name, input, arguments.eval(frame), frame);
  return Value(Json(negated ? !result : result));
}

Value UnaryExpr::eval(Frame& frame) const {
  const Value value = operand->eval(frame);
  if (op == Op::logical_not) return Value(Json(!truthy(value)));
  return negate(value, op == Op::minus);
}

Value BinaryExpr::eval(Frame& frame) const {
  const Value a = left->eval(frame);
  return binary_op(op, a, right->eval(frame));
}

Value LogicalExpr::eval(Frame& frame) const {
  Value a = left->eval(frame);
  if (truthy(a) != is_and) return a;
  return right->eval(frame);
}

Value CompareExpr::eval(Frame& frame) const {
  Value a = first->eval(frame);
  for (const auto& [op, expr] : rest) {
    Value b = expr->eval(frame);
    bool result = false;
    switch (op) {
      case Op::eq:
        result = equals(a, b);
        break;
      case Op::ne:
        result = !equals(a, b);
        break;
      case Op::lt:
        result = compare(a, b, "<") < 0;
        break;
      case Op::le:
        result = compare(a, b, "<=") <= 0;
        break;
      case Op::gt:
        result = compare(a, b, ">") > 0;
        break;
      case Op::ge:
        result = compare(a, b, ">=") >= 0;
        break;
      case Op::in:
        result = contains(b, a);
        break;
      case Op::not_in:
        result = !contains(b, a);
        break;
    }
    if (!result) return Value(Json(false));
    a = std::move(b);
  }
  return Value(Json(true));
}

Value ConditionalExpr::eval(Frame& frame) const {
  if (truthy(condition->eval(frame))) return then->eval(frame);
  if (otherwise) return otherwise->eval(frame);
  return Value::undefined("the inline if-expression evaluated to false and has no else section");
}

// ---- Statements ----

Flow run_body(const Body& body, Frame& frame) {
  for (const auto& stmt : body) {
    try {
      const Flow flow = stmt->run(frame);
      if (flow != Flow::next) return flow;
    } catch (RenderFailure& e) {
      if (!e.where) e.where = stmt->where;
      throw;
    }
  }
  return Flow::next;
}

Flow TextStmt::run(Frame& frame) const {
  frame.out += text;
  return Flow::next;
}

Flow OutputStmt::run(Frame& frame) const {
  frame.out += to_str(expr->eval(frame));
  return Flow::next;
}

Flow IfStmt::run(Frame& frame) const {
  for (const auto& [condition, body] : branches)
    if (truthy(condition->eval(frame))) return run_body(body, frame);
  return run_body(otherwise, frame);
}

Flow ForStmt::run(Frame& frame) const {
  std::vector<Value> items = iterate(iterable->eval(frame));
  const auto bind = [&](Frame& inner, const Value& item) {
    AssignTarget target;
    target.names = targets;
    target.unpack = unpack;
    assign(target, item, inner);
  };
  if (condition) {
    std::vector<Value> kept;
    for (auto& item : items) {
      Frame inner{frame.state, std::make_shared<Scope>(frame.scope), frame.out};
      bind(inner, item);
      if (truthy(condition->eval(inner))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Frame inner{frame.state, std::make_shared<Scope>(frame.scope), frame.out};
    run_body(otherwise, inner);
    return Flow::next;
  }
  auto loop = std::make_shared<LoopInfo>(items);
  const Value loop_value(loop);
  for (size_t i = 0; i < items.size(); ++i) {
    loop->set_index(i);
    Frame inner{frame.state, std::make_shared<Scope>(frame.scope), frame.out};
    inner.scope->set("loop", loop_value);
    bind(inner, items[i]);
    if (run_body(body, inner) == Flow::break_loop) break;
  }
  return Flow::next;
}

Flow SetStmt::run(Frame& frame) const {
  assign(target, value->eval(frame), frame);
  return Flow::next;
}

Flow SetBlockStmt::run(Frame& frame) const {
  std::string captured;
  Frame inner{frame.state, frame.scope, captured};
  const Flow flow = run_body(body, inner);
  assign(target, apply_filters(filters, Value(Json(std::move(captured))), frame), frame);
  return flow;
}

Flow MacroStmt::run(Frame& frame) const {
  frame.scope->set(def.name, Value(std::make_shared<Macro>(def, frame.scope)));
  return Flow::next;
}

Flow CallBlockStmt::run(Frame& frame) const {
  frame.out += to_str(call->eval_with_caller(frame, Value(std::make_shared<Macro>(caller, frame.scope))));
  return Flow::next;
}

Flow FilterBlockStmt::run(Frame& frame) const {
  std::string captured;
  Frame inner{frame.state, frame.scope, captured};
  const Flow flow = run_body(body, inner);
  frame.out += to_str(apply_filters(filters, Value(Json(std::move(captured))), frame));
  return flow;
}

Flow LoopControlStmt::run(Frame&) const {
  return is_break ? Flow::break_loop : Flow::continue_loop;
}

}  // namespace wick::io::jinja
