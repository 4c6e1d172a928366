// The template lexer: text between tags, and the tokens inside {{ }} and {% %}, with jinja2's whitespace
// control exactly as transformers configures it (trim_blocks and lstrip_blocks on).
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

bool is_tag_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// Operators, longest first so that `//` wins over `/`.
constexpr std::array<std::string_view, 26> kOperators = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                                         "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                         ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(source) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < source.size(); ++i)
      if (source[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < source_.size()) {
      const size_t start = find_tag_start(pos_);
      if (start == std::string_view::npos) {
        emit_text(source_.substr(pos_), pos_);
        break;
      }
      const char kind = source_[start + 1];
      const char sign = start + 2 < source_.size() && (source_[start + 2] == '-' || source_[start + 2] == '+')
                            ? source_[start + 2]
                            : '\0';
      emit_text(control_whitespace(source_.substr(pos_, start - pos_), sign, kind != '{'), pos_);
      pos_ = start + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        lex_comment(start);
      } else if (kind == '%' && raw_block_begins()) {
        lex_raw(start);
      } else {
        tokens_.push_back({kind == '{' ? TokenKind::variable_begin : TokenKind::block_begin, {}, at(start)});
        lex_tag(kind == '{', start);
      }
    }
    tokens_.push_back({TokenKind::end, {}, at(source_.size())});
    return std::move(tokens_);
  }

 private:
  Location at(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - 1;
    return {static_cast<int>(it - line_starts_.begin()) + 1, static_cast<int>(offset - *it) + 1};
  }

  [[noreturn]] void fail(size_t offset, std::string message) const {
    throw SyntaxError{at(offset), std::move(message)};
  }

  size_t find_tag_start(size_t from) const {
    for (size_t i = source_.find('{', from); i != std::string_view::npos; i = source_.find('{', i + 1))
      if (i + 1 < source_.size() && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#'))
        return i;
    return std::string_view::npos;
  }

  // The text before a tag after the tag's whitespace control: `-` strips all whitespace before it; otherwise
  // a block or comment tag preceded on its line by whitespace only loses that whitespace (lstrip_blocks),
  // unless marked `+`.
  std::string_view control_whitespace(std::string_view text, char sign, bool lstrip) const {
    if (sign == '-') {
      size_t end = text.size();
      // Python's str.rstrip(): ASCII and Unicode whitespace alike.
      while (end > 0) {
        size_t begin = end - 1;
        while (begin > 0 && (static_cast<uint8_t>(text[begin]) & 0xC0) == 0x80) --begin;
        const std::u32string c = decode_utf8(text.substr(begin, end - begin));
        if (c.size() != 1 || !is_space(c[0])) break;
        end = begin;
      }
      return text.substr(0, end);
    }
    if (sign == '+' || !lstrip) return text;
    const size_t last_newline = text.rfind('\n');
    const size_t line_begin = last_newline == std::string_view::npos ? 0 : last_newline + 1;
    if (line_begin == 0 && !line_starting_) return text;
    const std::string_view tail = text.substr(line_begin);
    if (tail.empty()) return text;
    for (const char32_t c : decode_utf8(tail))
      if (!is_space(c)) return text;
    return text.substr(0, line_begin);
  }

  void emit_text(std::string_view text, size_t offset) {
    if (!text.empty()) tokens_.push_back({TokenKind::text, std::string(text), at(offset)});
  }

  // Consumes a tag end at pos_: `-` strips all whitespace after it; a plain block or comment end drops one
  // newline after it (trim_blocks); `+` keeps everything.
  void consume_tag_end(std::string_view end, bool trim_newline) {
    const char sign = source_[pos_];
    pos_ += (sign == '-' || sign == '+' ? 1 : 0) + end.size();
    const size_t end_of_tag = pos_;
    if (sign == '-') {
      pos_ = skip_space(pos_);
    } else if (sign != '+' && trim_newline && pos_ < source_.size() && source_[pos_] == '\n') {
      ++pos_;
    }
    line_starting_ = pos_ > end_of_tag ? source_[pos_ - 1] == '\n' : false;
  }

  // Past the whitespace (ASCII or Unicode, as Python's \s) starting at `i`.
  size_t skip_space(size_t i) const {
    while (i < source_.size()) {
      size_t next = i + 1;
      while (next < source_.size() && (static_cast<uint8_t>(source_[next]) & 0xC0) == 0x80) ++next;
      const std::u32string c = decode_utf8(source_.substr(i, next - i));
      if (c.size() != 1 || !is_space(c[0])) break;
      i = next;
    }
    return i;
  }

  bool at_tag_end(std::string_view end, bool allow_plus) const {
    const std::string_view rest = source_.substr(pos_);
    if (rest.substr(0, end.size()) == end) return true;
    return rest.size() > end.size() && (rest[0] == '-' || (allow_plus && rest[0] == '+')) &&
           rest.substr(1, end.size()) == end;
  }

  void lex_comment(size_t start) {
    const size_t close = source_.find("#}", pos_);
    if (close == std::string_view::npos) fail(start, "missing end of comment tag");
    pos_ = close > pos_ && (source_[close - 1] == '-' || source_[close - 1] == '+') ? close - 1 : close;
    consume_tag_end("#}", true);
  }

  // `{% raw %}` ... `{% endraw %}`: the text between is output as is.
  bool raw_block_begins() const {
    size_t i = pos_;
    while (i < source_.size() && is_tag_space(source_[i])) ++i;
    if (source_.substr(i, 3) != "raw" || (i + 3 < source_.size() && is_name_char(source_[i + 3])))
      return false;
    return true;
  }

  void lex_raw(size_t start) {
    while (is_tag_space(source_[pos_])) ++pos_;
    pos_ += 3;
    while (pos_ < source_.size() && is_tag_space(source_[pos_])) ++pos_;
    if (!at_tag_end("%}", false)) fail(pos_, "expected '%}' after 'raw'");
    // The raw opening tag never drops a newline after it (jinja2 applies trim_blocks to its end only).
    consume_tag_end("%}", false);
    for (size_t i = find_tag_start(pos_); i != std::string_view::npos; i = find_tag_start(i + 1)) {
      if (source_[i + 1] != '%') continue;
      size_t j = i + 2;
      const char sign = j < source_.size() && (source_[j] == '-' || source_[j] == '+') ? source_[j] : '\0';
      if (sign) ++j;
      while (j < source_.size() && is_tag_space(source_[j])) ++j;
      if (source_.substr(j, 6) != "endraw") continue;
      j += 6;
      while (j < source_.size() && is_tag_space(source_[j])) ++j;
      const size_t saved = pos_;
      pos_ = j;
      if (!at_tag_end("%}", true)) {
        pos_ = saved;
        continue;
      }
      emit_text(control_whitespace(source_.substr(saved, i - saved), sign, true), saved);
      consume_tag_end("%}", true);
      return;
    }
    fail(start, "missing '{% endraw %}' for this raw block");
  }

  void lex_tag(bool variable, size_t start) {
    const std::string_view end = variable ? "}}" : "%}";
    std::vector<char> brackets;
    while (true) {
      while (pos_ < source_.size() && is_tag_space(source_[pos_])) ++pos_;
      if (pos_ >= source_.size())
        fail(start, fmt::format("unexpected end of template: this tag is never closed with '{}'", end));
      if (brackets.empty() && at_tag_end(end, !variable)) {
        tokens_.push_back({variable ? TokenKind::variable_end : TokenKind::block_end, {}, at(pos_)});
        consume_tag_end(end, !variable);
        return;
      }
      const char c = source_[pos_];
      if (c == '\'' || c == '"') {
        lex_string();
      } else if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        const size_t begin = pos_;
        while (pos_ < source_.size() && is_name_char(source_[pos_])) ++pos_;
        tokens_.push_back({TokenKind::name, std::string(source_.substr(begin, pos_ - begin)), at(begin)});
      } else {
        lex_operator(brackets);
      }
    }
  }

  void lex_operator(std::vector<char>& brackets) {
    for (const std::string_view op : kOperators) {
      if (source_.substr(pos_, op.size()) != op) continue;
      if (op == "(" || op == "[" || op == "{") {
        brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty()) fail(pos_, fmt::format("unexpected '{}'", op));
        if (brackets.back() != op[0])
          fail(pos_, fmt::format("unexpected '{}', expected '{}'", op, brackets.back()));
        brackets.pop_back();
      }
      tokens_.push_back({TokenKind::op, std::string(op), at(pos_)});
      pos_ += op.size();
      return;
    }
    const std::u32string c = decode_utf8(source_.substr(pos_, 4));
    std::string shown;
    append_utf8(shown, c.empty() ? U'?' : c[0]);
    fail(pos_, fmt::format("unexpected character '{}'", shown));
  }

  // Digits with single underscores between groups (Python's `(\d+_)*\d+`); returns the end or npos.
  size_t scan_digits(size_t i) const {
    if (i >= source_.size() || !is_digit(source_[i])) return std::string_view::npos;
    while (i < source_.size()) {
      if (is_digit(source_[i])) {
        ++i;
      } else if (source_[i] == '_' && i + 1 < source_.size() && is_digit(source_[i + 1])) {
        ++i;
      } else {
        break;
      }
    }
    return i;
  }

  void lex_number() {
    const size_t begin = pos_;
    const size_t integer_end = scan_digits(pos_);
    size_t end = integer_end;
    bool is_float = false;
    if (begin == 0 || source_[begin - 1] != '.') {
      size_t mantissa_end = integer_end;
      if (mantissa_end < source_.size() && source_[mantissa_end] == '.') {
        const size_t fraction_end = scan_digits(mantissa_end + 1);
        if (fraction_end != std::string_view::npos) {
          mantissa_end = fraction_end;
          is_float = true;
          end = fraction_end;
        }
      }
      if (mantissa_end < source_.size() && (source_[mantissa_end] == 'e' || source_[mantissa_end] == 'E')) {
        size_t k = mantissa_end + 1;
        if (k < source_.size() && (source_[k] == '+' || source_[k] == '-')) ++k;
        const size_t exponent_end = scan_digits(k);
        if (exponent_end != std::string_view::npos) {
          is_float = true;
          end = exponent_end;
        }
      }
    }
    std::string digits;
    for (const char c : source_.substr(begin, end - begin))
      if (c != '_') digits.push_back(c);
    Token token{is_float ? TokenKind::floating : TokenKind::integer, digits, at(begin)};
    if (is_float) {
      token.real = std::strtod(digits.c_str(), nullptr);
    } else {
      const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), token.integer);
      if (result.ec != std::errc()) fail(begin, fmt::format("integer literal {} is too large", digits));
    }
    tokens_.push_back(std::move(token));
    pos_ = end;
  }

  // A string literal, decoded as Python's unicode-escape codec does (jinja2's rule).
  void lex_string() {
    const size_t begin = pos_;
    const char quote = source_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= source_.size()) fail(begin, "unterminated string literal");
      const char c = source_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c != '\\') {
        value.push_back(c);
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= source_.size()) fail(begin, "unterminated string literal");
      const char e = source_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          value.push_back(e);
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
          append_utf8(value, hex_escape(2, begin));
          break;
        case 'u':
          append_utf8(value, hex_escape(4, begin));
          break;
        case 'U':
          append_utf8(value, hex_escape(8, begin));
          break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t code = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < source_.size() && source_[pos_] >= '0' && source_[pos_] <= '7';
                 ++k)
              code = code * 8 + static_cast<char32_t>(source_[pos_++] - '0');
            append_utf8(value, code);
          } else if (e == 'N') {
            fail(pos_ - 2, "\\N{...} escapes are not supported");
          } else {
            // Python keeps unknown escapes as written.
            value.push_back('\\');
            --pos_;
          }
      }
    }
    tokens_.push_back({TokenKind::string, std::move(value), at(begin)});
  }

  char32_t hex_escape(int digits, size_t literal_begin) {
    uint32_t code = 0;
    for (int k = 0; k < digits; ++k) {
      const char h = pos_ < source_.size() ? source_[pos_] : '\0';
      int v = -1;
      if (h >= '0' && h <= '9') v = h - '0';
      if (h >= 'a' && h <= 'f') v = h - 'a' + 10;
      if (h >= 'A' && h <= 'F') v = h - 'A' + 10;
      if (v < 0)
        fail(literal_begin, fmt::format("truncated \\{} escape in string literal (expected {} hex digits)",
                                        digits == 2   ? 'x'
                                        : digits == 4 ? 'u'
                                                      : 'U',
                                        digits));
      code = code * 16 + static_cast<uint32_t>(v);
      ++pos_;
    }
    if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
      fail(literal_begin, "string literal escape is not a valid code point");
    return static_cast<char32_t>(code);
  }

  std::string_view source_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> lex(std::string_view source) {
  return Lexer(source).run();
}

}  // namespace wick::io::jinja
