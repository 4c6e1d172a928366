// Python's str methods on UTF-8 text: templates index, slice, strip, split and case-map by code point, as
// Python does, never by byte.
#include <utf8proc.h>

#include <algorithm>

#include "io/chat_template_internal.h"

namespace wick::io::jinja {
namespace {

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

char32_t upper_char(char32_t c) {
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t lower_char(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t title_char(char32_t c) {
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

bool is_cased(char32_t c) {
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

// str.isprintable(): what repr() leaves unescaped.
bool is_printable(char32_t c) {
  if (c == ' ') return true;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

// The unconditional one-to-many mappings of SpecialCasing.txt that Python applies and utf8proc's one-to-one
// mapping lacks (the common ones: sharp s, Latin ligatures, dotted capital I).
std::optional<std::string_view> special_upper(char32_t c) {
  switch (c) {
    case 0xDF:
      return "SS";
    case 0xFB00:
      return "FF";
    case 0xFB01:
      return "FI";
    case 0xFB02:
      return "FL";
    case 0xFB03:
      return "FFI";
    case 0xFB04:
      return "FFL";
    case 0xFB05:
    case 0xFB06:
      return "ST";
    default:
      return std::nullopt;
  }
}

}  // namespace

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Malformed bytes (never produced by JSON parsing or a validated template) decode as U+FFFD.
std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<uint8_t>(text[i]);
    if (lead < 0x80) {
      out.push_back(lead);
      ++i;
      continue;
    }
    size_t extra = 0;
    char32_t c = 0;
    if (lead >= 0xC0 && lead < 0xE0) {
      extra = 1;
      c = lead & 0x1F;
    } else if (lead >= 0xE0 && lead < 0xF0) {
      extra = 2;
      c = lead & 0x0F;
    } else if (lead >= 0xF0 && lead < 0xF8) {
      extra = 3;
      c = lead & 0x07;
    }
    bool ok = extra > 0 && i + extra < text.size();
    for (size_t k = 1; ok && k <= extra; ++k) {
      const auto byte = static_cast<uint8_t>(text[i + k]);
      ok = (byte & 0xC0) == 0x80;
      c = (c << 6) | (byte & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(c);
    i += extra + 1;
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t c : text) append_utf8(out, c);
  return out;
}

size_t code_point_count(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(),
                                           [](char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }));
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string strip(std::string_view text, StripSide side, std::optional<std::string_view> chars) {
  const std::u32string s = decode_utf8(text);
  const std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  const auto stripped = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t begin = 0, end = s.size();
  if (side != StripSide::right)
    while (begin < end && stripped(s[begin])) ++begin;
  if (side != StripSide::left)
    while (end > begin && stripped(s[end - 1])) --end;
  return encode_utf8(std::u32string_view(s).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view text, std::optional<std::string_view> separator,
                               int64_t max_split, bool from_right) {
  std::vector<std::string> parts;
  if (separator) {
    if (separator->empty()) failure("ValueError: empty separator");
    if (!from_right) {
      size_t start = 0;
      while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
        const size_t at = text.find(*separator, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(text.substr(start, at - start));
        start = at + separator->size();
      }
      parts.emplace_back(text.substr(start));
      return parts;
    }
    size_t end = text.size();
    while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
      if (end < separator->size()) break;
      const size_t at = text.rfind(*separator, end - separator->size());
      if (at == std::string_view::npos) break;
      parts.emplace_back(text.substr(at + separator->size(), end - at - separator->size()));
      end = at;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Runs of whitespace separate; leading and trailing whitespace yield no empty parts.
  std::u32string s = decode_utf8(text);
  if (from_right) std::reverse(s.begin(), s.end());
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      size_t end = s.size();
      while (end > i && is_space(s[end - 1])) --end;
      std::u32string rest = s.substr(i, end - i);
      if (from_right) std::reverse(rest.begin(), rest.end());
      parts.push_back(encode_utf8(rest));
      break;
    }
    const size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    std::u32string word = s.substr(start, i - start);
    if (from_right) std::reverse(word.begin(), word.end());
    parts.push_back(encode_utf8(word));
  }
  if (from_right) std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> split_lines(std::string_view text, bool keep_ends) {
  const std::u32string s = decode_utf8(text);
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    if (!is_line_break(s[i])) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    if (s[i] == '\r' && end < s.size() && s[end] == '\n') ++end;
    lines.push_back(encode_utf8(std::u32string_view(s).substr(start, (keep_ends ? end : i) - start)));
    start = i = end;
  }
  if (start < s.size()) lines.push_back(encode_utf8(std::u32string_view(s).substr(start)));
  return lines;
}

std::string replace(std::string_view text, std::string_view old, std::string_view replacement,
                    int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    const std::u32string s = decode_utf8(text);
    int64_t done = 0;
    for (const char32_t c : s) {
      if (count < 0 || done < count) {
        out.append(replacement);
        ++done;
      }
      append_utf8(out, c);
    }
    if (count < 0 || done < count) out.append(replacement);
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = text.find(old, start);
    if (at == std::string_view::npos) break;
    out.append(text.substr(start, at - start)).append(replacement);
    start = at + old.size();
    ++done;
  }
  out.append(text.substr(start));
  return out;
}

std::string to_upper(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t c : decode_utf8(text)) {
    if (const auto special = special_upper(c))
      out.append(*special);
    else
      append_utf8(out, upper_char(c));
  }
  return out;
}

std::string to_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t c : decode_utf8(text)) {
    if (c == 0x130)
      out.append("i\xCC\x87");  // İ -> i + combining dot above
    else
      append_utf8(out, lower_char(c));
  }
  return out;
}

std::string capitalize(std::string_view text) {
  const std::u32string s = decode_utf8(text);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) append_utf8(out, i == 0 ? title_char(s[i]) : lower_char(s[i]));
  return out;
}

std::string python_title(std::string_view text) {
  std::string out;
  bool previous_cased = false;
  for (const char32_t c : decode_utf8(text)) {
    append_utf8(out, previous_cased ? lower_char(c) : title_char(c));
    previous_cased = is_cased(c);
  }
  return out;
}

std::string jinja_title(std::string_view text) {
  // jinja2 splits on runs of [-\s({[<] and upper-cases the first character of every other piece.
  const auto separator = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
  };
  std::string out;
  bool word_start = true;
  for (const char32_t c : decode_utf8(text)) {
    if (separator(c)) {
      append_utf8(out, c);
      word_start = true;
      continue;
    }
    append_utf8(out, word_start ? upper_char(c) : lower_char(c));
    word_start = false;
  }
  return out;
}

std::string repr_string(std::string_view text) {
  const std::u32string s = decode_utf8(text);
  const bool has_single = s.find(U'\'') != std::u32string::npos;
  const bool has_double = s.find(U'"') != std::u32string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (const char32_t c : s) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !is_printable(c))) {
      if (c < 0x100)
        out.append(fmt::format("\\x{:02x}", static_cast<uint32_t>(c)));
      else if (c < 0x10000)
        out.append(fmt::format("\\u{:04x}", static_cast<uint32_t>(c)));
      else
        out.append(fmt::format("\\U{:08x}", static_cast<uint32_t>(c)));
    } else {
      append_utf8(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace wick::io::jinja
