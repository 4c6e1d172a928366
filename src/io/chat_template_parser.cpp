// The template parser: tokens to a syntax tree, following jinja2's grammar and operator precedence
// (or < and < not < comparisons < + - < ~ < * / // % < ** < unary, with filters and tests binding tightest).
#include <initializer_list>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

template <typename Node>
std::unique_ptr<Node> make(Location where) {
  auto node = std::make_unique<Node>();
  node->where = where;
  return node;
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::text:
      return "text";
    case TokenKind::variable_begin:
      return "'{{'";
    case TokenKind::variable_end:
      return "'}}'";
    case TokenKind::block_begin:
      return "'{%'";
    case TokenKind::block_end:
      return "'%}'";
    case TokenKind::string:
      return "a string";
    case TokenKind::integer:
    case TokenKind::floating:
      return "a number";
    case TokenKind::end:
      return "the end of the template";
    default:
      return "'" + token.value + "'";
  }
}

// Tags that only close or continue a block.
bool is_block_continuation(std::string_view name) {
  for (const std::string_view tag : {"elif", "else", "endif", "endfor", "endset", "endmacro", "endcall",
                                     "endfilter", "endgeneration", "endraw"})
    if (name == tag) return true;
  return false;
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  Body parse_template() { return parse_body({}, nullptr, "", {}); }

 private:
  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& advance() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  bool is_op(std::string_view op) const { return current().kind == TokenKind::op && current().value == op; }
  bool is_name(std::string_view name) const {
    return current().kind == TokenKind::name && current().value == name;
  }

  [[noreturn]] void fail(Location where, std::string message) const {
    throw SyntaxError{where, std::move(message)};
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail(current().where, message); }

  void expect_op(std::string_view op) {
    if (!is_op(op)) fail_here(fmt::format("expected '{}', got {}", op, describe(current())));
    advance();
  }
  void expect_name(std::string_view name) {
    if (!is_name(name)) fail_here(fmt::format("expected '{}', got {}", name, describe(current())));
    advance();
  }
  std::string expect_identifier() {
    if (current().kind != TokenKind::name)
      fail_here(fmt::format("expected a name, got {}", describe(current())));
    return advance().value;
  }
  void expect_block_end() {
    if (current().kind != TokenKind::block_end)
      fail_here(fmt::format("expected the end of the tag '%}}', got {}", describe(current())));
    advance();
  }

  // ---- Statements ----

  // Statements up to a block tag named in `ends`, whose `{%` and name are consumed and the name stored in
  // `found`; with no `ends`, up to the end of the template.
  Body parse_body(std::initializer_list<std::string_view> ends, std::string* found, std::string_view open_tag,
                  Location open_at) {
    Body body;
    while (true) {
      const Token& token = current();
      switch (token.kind) {
        case TokenKind::text: {
          auto text = make<TextStmt>(token.where);
          text->text = token.value;
          body.push_back(std::move(text));
          advance();
          break;
        }
        case TokenKind::variable_begin: {
          auto output = make<OutputStmt>(token.where);
          advance();
          output->expr = parse_tuple(false, true, {}, false);
          if (current().kind != TokenKind::variable_end)
            fail_here(fmt::format("expected the end of the expression '}}}}', got {}", describe(current())));
          advance();
          body.push_back(std::move(output));
          break;
        }
        case TokenKind::block_begin: {
          const Location where = token.where;
          advance();
          const std::string name = expect_identifier_for_tag();
          for (const std::string_view end : ends) {
            if (name == end) {
              *found = name;
              return body;
            }
          }
          if (is_block_continuation(name)) {
            if (ends.size() == 0) fail(where, fmt::format("unexpected '{}': no open block to close", name));
            fail(where, fmt::format("unexpected '{}': expected {} to close the '{}' from line {}", name,
                                    expected_list(ends), open_tag, open_at.line));
          }
          parse_statement(name, where, body);
          break;
        }
        case TokenKind::end:
          if (ends.size() != 0)
            fail(token.where,
                 fmt::format("unexpected end of template: expected {} to close the '{}' from line {}",
                             expected_list(ends), open_tag, open_at.line));
          return body;
        default:
          fail_here(fmt::format("unexpected {}", describe(token)));
      }
    }
  }

  static std::string expected_list(std::initializer_list<std::string_view> names) {
    std::string out;
    size_t i = 0;
    for (const std::string_view name : names) {
      if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
      out += "'" + std::string(name) + "'";
      ++i;
    }
    return out;
  }

  std::string expect_identifier_for_tag() {
    if (current().kind != TokenKind::name)
      fail_here(fmt::format("expected a tag name, got {}", describe(current())));
    return advance().value;
  }

  void parse_statement(const std::string& name, Location where, Body& body) {
    if (name == "if") {
      body.push_back(parse_if(where));
    } else if (name == "for") {
      body.push_back(parse_for(where));
    } else if (name == "set") {
      body.push_back(parse_set(where));
    } else if (name == "macro") {
      body.push_back(parse_macro(where));
    } else if (name == "call") {
      body.push_back(parse_call_block(where));
    } else if (name == "filter") {
      body.push_back(parse_filter_block(where));
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(where, fmt::format("'{}' outside of a loop", name));
      auto control = make<LoopControlStmt>(where);
      control->is_break = name == "break";
      expect_block_end();
      body.push_back(std::move(control));
    } else if (name == "generation") {
      // transformers' marker of assistant text; it renders its body unchanged.
      expect_block_end();
      std::string found;
      for (auto& stmt : parse_body({"endgeneration"}, &found, "generation", where))
        body.push_back(std::move(stmt));
      expect_block_end();
    } else {
      fail(where, fmt::format("unknown tag '{}'", name));
    }
  }

  StmtPtr parse_if(Location where) {
    auto node = make<IfStmt>(where);
    std::string found = "if";
    Location at = where;
    while (found == "if" || found == "elif") {
      ExprPtr condition = parse_tuple(false, false, {}, false);
      expect_block_end();
      const std::string tag = found;
      Body branch = parse_body({"elif", "else", "endif"}, &found, tag, at);
      node->branches.emplace_back(std::move(condition), std::move(branch));
      at = tokens_[pos_ - 1].where;
    }
    if (found == "else") {
      expect_block_end();
      node->otherwise = parse_body({"endif"}, &found, "else", at);
    }
    expect_block_end();
    return node;
  }

  StmtPtr parse_for(Location where) {
    auto node = make<ForStmt>(where);
    const AssignTarget target = parse_assign_target(false, "in");
    node->targets = target.names;
    node->unpack = target.unpack;
    expect_name("in");
    node->iterable = parse_tuple(false, false, {"recursive"}, false);
    if (is_name("if")) {
      advance();
      node->condition = parse_expression(true);
    }
    if (is_name("recursive")) fail_here("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    std::string found;
    node->body = parse_body({"endfor", "else"}, &found, "for", where);
    --loop_depth_;
    if (found == "else") {
      expect_block_end();
      node->otherwise = parse_body({"endfor"}, &found, "for", where);
    }
    expect_block_end();
    return node;
  }

  StmtPtr parse_set(Location where) {
    AssignTarget target = parse_assign_target(true, "");
    if (is_op("=")) {
      advance();
      auto node = make<SetStmt>(where);
      node->target = std::move(target);
      node->value = parse_tuple(false, true, {}, false);
      expect_block_end();
      return node;
    }
    auto node = make<SetBlockStmt>(where);
    node->target = std::move(target);
    while (is_op("|")) {
      advance();
      node->filters.push_back(parse_filter_call());
    }
    expect_block_end();
    std::string found;
    node->body = parse_body({"endset"}, &found, "set", where);
    expect_block_end();
    return node;
  }

  // `name`, `a, b` or `(a, b)` (unpacking), or with `allow_attribute` `ns.attr`.
  AssignTarget parse_assign_target(bool allow_attribute, std::string_view stop_name) {
    AssignTarget target;
    if (allow_attribute && current().kind == TokenKind::name && peek().kind == TokenKind::op &&
        peek().value == ".") {
      target.names.push_back(advance().value);
      advance();
      target.attribute = expect_identifier();
      return target;
    }
    const bool parenthesized = is_op("(");
    if (parenthesized) advance();
    while (true) {
      if (current().kind != TokenKind::name || is_name(stop_name))
        fail_here(fmt::format("expected a variable name to assign to, got {}", describe(current())));
      target.names.push_back(advance().value);
      if (!is_op(",")) break;
      target.unpack = true;
      advance();
      if ((parenthesized && is_op(")")) || is_name(stop_name) || is_op("=")) break;
    }
    if (parenthesized) expect_op(")");
    for (const auto& name : target.names)
      if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
          name == "None")
        fail_here(fmt::format("cannot assign to '{}'", name));
    return target;
  }

  void parse_parameters(MacroDef& def) {
    expect_op("(");
    while (!is_op(")")) {
      if (!def.parameters.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_identifier();
      ExprPtr fallback;
      if (is_op("=")) {
        advance();
        fallback = parse_expression(true);
      }
      def.parameters.emplace_back(std::move(name), std::move(fallback));
    }
    advance();
  }

  StmtPtr parse_macro(Location where) {
    auto node = make<MacroStmt>(where);
    node->def.where = where;
    node->def.name = expect_identifier();
    parse_parameters(node->def);
    expect_block_end();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    std::string found;
    node->def.body = parse_body({"endmacro"}, &found, "macro", where);
    loop_depth_ = saved_depth;
    expect_block_end();
    return node;
  }

  StmtPtr parse_call_block(Location where) {
    auto node = make<CallBlockStmt>(where);
    node->caller.where = where;
    node->caller.name = "caller";
    if (is_op("(")) parse_parameters(node->caller);
    ExprPtr call = parse_expression(true);
    auto* as_call = dynamic_cast<Call*>(call.get());
    if (as_call == nullptr) fail(where, "expected a macro call after 'call'");
    call.release();
    node->call.reset(as_call);
    expect_block_end();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    std::string found;
    node->caller.body = parse_body({"endcall"}, &found, "call", where);
    loop_depth_ = saved_depth;
    expect_block_end();
    return node;
  }

  StmtPtr parse_filter_block(Location where) {
    auto node = make<FilterBlockStmt>(where);
    node->filters.push_back(parse_filter_call());
    while (is_op("|")) {
      advance();
      node->filters.push_back(parse_filter_call());
    }
    expect_block_end();
    std::string found;
    node->body = parse_body({"endfilter"}, &found, "filter", where);
    expect_block_end();
    return node;
  }

  FilterCall parse_filter_call() {
    FilterCall call;
    call.where = current().where;
    call.name = parse_dotted_name();
    if (!is_filter(call.name)) fail(call.where, unknown_filter_message(call.name));
    if (is_op("(")) call.arguments = parse_call_arguments();
    return call;
  }

  static std::string unknown_filter_message(const std::string& name) {
    return fmt::format("no filter named '{}' (or it is not supported)", name);
  }

  std::string parse_dotted_name() {
    std::string name = expect_identifier();
    while (is_op(".")) {
      advance();
      name.push_back('.');
      name += expect_identifier();
    }
    return name;
  }

  // ---- Expressions ----

  // Comma-separated expressions; a tuple (a list here) when there is a comma.
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<std::string_view> end_names,
                      bool explicit_parentheses) {
    const Location where = current().where;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    const auto at_end = [&] {
      if (current().kind == TokenKind::variable_end || current().kind == TokenKind::block_end || is_op(")"))
        return true;
      for (const std::string_view name : end_names)
        if (is_name(name)) return true;
      return false;
    };
    while (true) {
      if (!items.empty()) expect_op(",");
      if (at_end()) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (!is_op(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses)
        fail_here(fmt::format("expected an expression, got {}", describe(current())));
    }
    auto list = make<ListLiteral>(where);
    list->items = std::move(items);
    return list;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_conditional() : parse_or(); }

  ExprPtr parse_conditional() {
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      auto node = make<ConditionalExpr>(current().where);
      advance();
      node->condition = parse_or();
      if (is_name("else")) {
        advance();
        node->otherwise = parse_conditional();
      }
      node->then = std::move(expr);
      expr = std::move(node);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto node = make<LogicalExpr>(current().where);
      advance();
      node->is_and = false;
      node->left = std::move(left);
      node->right = parse_and();
      left = std::move(node);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto node = make<LogicalExpr>(current().where);
      advance();
      node->is_and = true;
      node->left = std::move(left);
      node->right = parse_not();
      left = std::move(node);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      auto node = make<UnaryExpr>(current().where);
      advance();
      node->op = UnaryExpr::Op::logical_not;
      node->operand = parse_not();
      return node;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Location where = current().where;
    ExprPtr first = parse_math1();
    std::vector<std::pair<CompareExpr::Op, ExprPtr>> rest;
    while (true) {
      std::optional<CompareExpr::Op> op;
      if (current().kind == TokenKind::op) {
        const std::string& v = current().value;
        if (v == "==") op = CompareExpr::Op::eq;
        if (v == "!=") op = CompareExpr::Op::ne;
        if (v == "<") op = CompareExpr::Op::lt;
        if (v == "<=") op = CompareExpr::Op::le;
        if (v == ">") op = CompareExpr::Op::gt;
        if (v == ">=") op = CompareExpr::Op::ge;
        if (op) advance();
      } else if (is_name("in")) {
        op = CompareExpr::Op::in;
        advance();
      } else if (is_name("not") && peek().kind == TokenKind::name && peek().value == "in") {
        op = CompareExpr::Op::not_in;
        advance();
        advance();
      }
      if (!op) break;
      rest.emplace_back(*op, parse_math1());
    }
    if (rest.empty()) return first;
    auto node = make<CompareExpr>(where);
    node->first = std::move(first);
    node->rest = std::move(rest);
    return node;
  }

  ExprPtr binary(BinaryOp op, ExprPtr left, ExprPtr right, Location where) {
    auto node = make<BinaryExpr>(where);
    node->op = op;
    node->left = std::move(left);
    node->right = std::move(right);
    return node;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Location where = current().where;
      const BinaryOp op = advance().value == "+" ? BinaryOp::add : BinaryOp::sub;
      left = binary(op, std::move(left), parse_concat(), where);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Location where = advance().where;
      left = binary(BinaryOp::concat, std::move(left), parse_math2(), where);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Location where = current().where;
      const std::string op = advance().value;
      const BinaryOp kind = op == "*"    ? BinaryOp::mul
                            : op == "/"  ? BinaryOp::div
                            : op == "//" ? BinaryOp::floordiv
                                         : BinaryOp::mod;
      left = binary(kind, std::move(left), parse_pow(), where);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Location where = advance().where;
      left = binary(BinaryOp::pow, std::move(left), parse_unary(true), where);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto unary = make<UnaryExpr>(current().where);
      unary->op = advance().value == "-" ? UnaryExpr::Op::minus : UnaryExpr::Op::plus;
      unary->operand = parse_unary(false);
      node = std::move(unary);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr literal(Json json, Location where) {
    auto node = make<Literal>(where);
    node->value = Value(std::move(json));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& token = current();
    const Location where = token.where;
    switch (token.kind) {
      case TokenKind::name: {
        advance();
        if (token.value == "true" || token.value == "True") return literal(Json(true), where);
        if (token.value == "false" || token.value == "False") return literal(Json(false), where);
        if (token.value == "none" || token.value == "None") return literal(Json(), where);
        auto name = make<Name>(where);
        name->name = token.value;
        return name;
      }
      case TokenKind::string: {
        std::string value;
        while (current().kind == TokenKind::string) value += advance().value;
        return literal(Json(std::move(value)), where);
      }
      case TokenKind::integer:
        advance();
        return literal(Json(token.integer), where);
      case TokenKind::floating:
        advance();
        return literal(Json(token.real), where);
      case TokenKind::op:
        if (token.value == "(") {
          advance();
          ExprPtr inner = parse_tuple(false, true, {}, true);
          expect_op(")");
          return inner;
        }
        if (token.value == "[") return parse_list();
        if (token.value == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail_here(fmt::format("unexpected {}", describe(token)));
  }

  ExprPtr parse_list() {
    auto node = make<ListLiteral>(advance().where);
    while (!is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    advance();
    return node;
  }

  ExprPtr parse_dict() {
    auto node = make<DictLiteral>(advance().where);
    while (!is_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    advance();
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr object) {
    const Location where = current().where;
    if (advance().value == ".") {
      if (current().kind == TokenKind::name) {
        auto node = make<Attribute>(where);
        node->object = std::move(object);
        node->name = advance().value;
        return node;
      }
      if (current().kind == TokenKind::integer) {
        auto node = make<Subscript>(where);
        node->object = std::move(object);
        node->index = literal(Json(current().integer), current().where);
        advance();
        return node;
      }
      fail_here(fmt::format("expected an attribute name after '.', got {}", describe(current())));
    }
    // `[index]`, `[start:stop:step]`, or `[a, b]` (a tuple key).
    std::vector<ExprPtr> keys;
    std::unique_ptr<Slice> slice;
    while (!is_op("]")) {
      if (!keys.empty() || slice) expect_op(",");
      ExprPtr start;
      if (!is_op(":")) {
        start = parse_expression(true);
        if (!is_op(":")) {
          keys.push_back(std::move(start));
          continue;
        }
      }
      if (slice || !keys.empty()) fail_here("tuple subscripts with slices are not supported");
      slice = make<Slice>(where);
      slice->start = std::move(start);
      advance();  // ':'
      if (!is_op("]") && !is_op(",") && !is_op(":")) slice->stop = parse_expression(true);
      if (is_op(":")) {
        advance();
        if (!is_op("]") && !is_op(",")) slice->step = parse_expression(true);
      }
    }
    advance();
    if (slice) {
      if (!keys.empty()) fail(where, "tuple subscripts with slices are not supported");
      slice->object = std::move(object);
      return slice;
    }
    if (keys.empty()) fail(where, "expected an index inside '[]'");
    auto node = make<Subscript>(where);
    node->object = std::move(object);
    if (keys.size() == 1) {
      node->index = std::move(keys[0]);
    } else {
      auto tuple = make<ListLiteral>(where);
      tuple->items = std::move(keys);
      node->index = std::move(tuple);
    }
    return node;
  }

  Arguments parse_call_arguments() {
    Arguments arguments;
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail_here("*args and **kwargs in calls are not supported");
      if (current().kind == TokenKind::name && peek().kind == TokenKind::op && peek().value == "=") {
        std::string name = advance().value;
        advance();
        arguments.keyword.emplace_back(std::move(name), parse_expression(true));
        continue;
      }
      if (!arguments.keyword.empty()) fail_here("a positional argument cannot follow keyword arguments");
      arguments.positional.push_back(parse_expression(true));
    }
    advance();
    return arguments;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto node = make<Call>(current().where);
    node->callee = std::move(callee);
    node->arguments = parse_call_arguments();
    return node;
  }

  ExprPtr parse_filter(ExprPtr operand) {
    auto node = make<FilterExpr>(current().where);
    node->operand = std::move(operand);
    node->name = parse_dotted_name();
    if (!is_filter(node->name)) fail(node->where, unknown_filter_message(node->name));
    if (is_op("(")) node->arguments = parse_call_arguments();
    return node;
  }

  ExprPtr parse_test(ExprPtr operand) {
    auto node = make<TestExpr>(advance().where);  // 'is'
    node->operand = std::move(operand);
    if (is_name("not")) {
      advance();
      node->negated = true;
    }
    const Location name_at = current().where;
    node->name = parse_dotted_name();
    if (!is_test(node->name))
      fail(name_at, fmt::format("no test named '{}' (or it is not supported)", node->name));
    const TokenKind kind = current().kind;
    if (is_op("(")) {
      node->arguments = parse_call_arguments();
    } else if ((kind == TokenKind::name || kind == TokenKind::string || kind == TokenKind::integer ||
                kind == TokenKind::floating || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("tests cannot be chained with 'is'");
      node->arguments.positional.push_back(parse_postfix(parse_primary()));
    }
    return node;
  }

  const std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) {
  return Parser(tokens).parse_template();
}

}  // namespace wick::io::jinja
