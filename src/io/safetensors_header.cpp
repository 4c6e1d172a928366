// Validation of a safetensors header. The header comes from a file that may be truncated, corrupt or hostile,
// so nothing in it is used before it is checked: the length against the file, the JSON syntax (no repeated
// keys, bounded nesting), every entry's dtype, shape and offsets, the byte count against the shape with
// overflow checks, each range against the data area, and the ranges against each other.
//
// This file depends only on the error helper, fmt and nlohmann::json, so the fuzz target can build it alone.
#include <algorithm>
#include <bit>
#include <limits>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/io/safetensors.h"

namespace wick::io {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
// A valid header nests three deep (header, entry, shape); deeper input is rejected while it is parsed.
constexpr int kMaxJsonDepth = 8;

struct FormatDType {
  std::string_view name;
  uint64_t bits;
  std::optional<DType> dtype;
};

// Every dtype the reference library knows; only some have a wick dtype.
constexpr FormatDType kFormatDTypes[] = {
    {"BOOL", 8, DType::boolean},      {"U8", 8, DType::u8},         {"I8", 8, std::nullopt},
    {"I16", 16, std::nullopt},        {"U16", 16, std::nullopt},    {"F16", 16, DType::f16},
    {"BF16", 16, DType::bf16},        {"I32", 32, DType::i32},      {"U32", 32, std::nullopt},
    {"F32", 32, DType::f32},          {"F64", 64, DType::f64},      {"I64", 64, DType::i64},
    {"U64", 64, std::nullopt},        {"C64", 64, std::nullopt},    {"F8_E5M2", 8, std::nullopt},
    {"F8_E4M3", 8, std::nullopt},     {"F8_E8M0", 8, std::nullopt}, {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt}, {"F6_E2M3", 6, std::nullopt}, {"F6_E3M2", 6, std::nullopt},
    {"F4", 4, std::nullopt},
};

template <typename... Args>
[[noreturn]] void file_error(std::string_view label, fmt::format_string<Args...> format, Args&&... args) {
  fail("safetensors", "{}: {}", label, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void tensor_error(std::string_view label, std::string_view name,
                               fmt::format_string<Args...> format, Args&&... args) {
  fail("safetensors", "{}: tensor '{}': {}", label, name, fmt::format(format, std::forward<Args>(args)...));
}

// A JSON value as the message shows it: short values in full, long ones cut.
std::string shown(const json* value) {
  if (value == nullptr) return "nothing";
  constexpr size_t kMaxShown = 80;
  std::string text = value->dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

const json* field(const json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The value of a non-negative JSON integer (nlohmann keeps those unsigned unless written with a minus sign).
std::optional<uint64_t> as_count(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0)
    return static_cast<uint64_t>(value.get<int64_t>());
  return std::nullopt;
}

std::string shape_text(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

json parse_json(std::span<const uint8_t> text, std::string_view label) {
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) file_error(label, "header nests deeper than {} levels", kMaxJsonDepth);
        break;
      case json::parse_event_t::key: {
        // nlohmann keeps the last of repeated keys, other readers the first: refuse the ambiguity.
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) file_error(label, "header repeats the key '{}'", key);
        break;
      }
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    file_error(label, "header is not valid JSON: {}", e.what());
  }
}

std::map<std::string, std::string> parse_metadata(std::string_view label, const json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;
  if (!value.is_object())
    file_error(label, "__metadata__ must be an object of strings, got {}", shown(&value));
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string())
      file_error(label, "__metadata__ entry '{}' must be a string, got {}", key, shown(&text));
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

TensorInfo parse_entry(std::string_view label, const std::string& name, const json& entry,
                       uint64_t data_offset, uint64_t data_size) {
  if (!entry.is_object())
    tensor_error(label, name, "entry must be an object with dtype, shape and data_offsets, got {}",
                 shown(&entry));

  const json* dtype = field(entry, "dtype");
  if (dtype == nullptr || !dtype->is_string())
    tensor_error(label, name, "dtype must be a string, got {}", shown(dtype));
  const auto& dtype_name = dtype->get_ref<const std::string&>();
  const auto* format = std::find_if(std::begin(kFormatDTypes), std::end(kFormatDTypes),
                                    [&](const FormatDType& d) { return d.name == dtype_name; });
  if (format == std::end(kFormatDTypes)) {
    std::vector<std::string_view> known;
    for (const auto& d : kFormatDTypes) known.push_back(d.name);
    tensor_error(label, name, "unknown dtype '{}' (known: {})", dtype_name, fmt::join(known, ", "));
  }

  const json* shape_json = field(entry, "shape");
  if (shape_json == nullptr || !shape_json->is_array())
    tensor_error(label, name, "shape must be an array of non-negative integers, got {}", shown(shape_json));
  Shape shape;
  uint64_t numel = 1;
  for (const json& dim_json : *shape_json) {
    const std::optional<uint64_t> dim = as_count(dim_json);
    if (!dim)
      tensor_error(label, name, "shape must be an array of non-negative integers, got {}", shown(shape_json));
    if (*dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, *dim, &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      tensor_error(label, name, "shape {} has more than 2^63 - 1 elements", shown(shape_json));
    shape.push_back(static_cast<int64_t>(*dim));
  }

  const json* offsets = field(entry, "data_offsets");
  std::optional<uint64_t> begin, end;
  if (offsets != nullptr && offsets->is_array() && offsets->size() == 2) {
    begin = as_count((*offsets)[0]);
    end = as_count((*offsets)[1]);
  }
  if (!begin || !end)
    tensor_error(label, name, "data_offsets must be two non-negative integers [begin, end], got {}",
                 shown(offsets));
  if (*begin > *end) tensor_error(label, name, "data_offsets [{}, {}] end before they begin", *begin, *end);

  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, format->bits, &bits))
    tensor_error(label, name, "shape {} of {} has a byte size over 64 bits", shape_text(shape), format->name);
  if (bits % 8 != 0)
    tensor_error(label, name, "shape {} of {} is {} bits, not a whole number of bytes", shape_text(shape),
                 format->name, bits);
  const uint64_t needed = bits / 8;
  if (*end - *begin != needed)
    tensor_error(label, name, "data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", *begin, *end,
                 *end - *begin, shape_text(shape), format->name, needed);
  if (*end > data_size)
    tensor_error(label, name, "data_offsets [{}, {}] run past the end of the data area ({} bytes)", *begin,
                 *end, data_size);
  return TensorInfo{std::string(format->name), format->dtype, std::move(shape), data_offset + *begin, needed};
}

// Empty ranges overlap nothing; non-empty ones must be disjoint. Sorted by start, each range must start at or
// after the end of the one before, which (all before being disjoint) is the furthest any of them reaches.
void check_disjoint(std::string_view label, const SafetensorsHeader& header) {
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, info] : header.tensors) {
    const uint64_t begin = info.byte_offset - header.data_offset;
    if (info.byte_size > 0) ranges.push_back({begin, begin + info.byte_size, &name});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& a = ranges[i - 1];
    const Range& b = ranges[i];
    if (b.begin < a.end)
      file_error(label, "tensors '{}' (data_offsets [{}, {}]) and '{}' (data_offsets [{}, {}]) overlap",
                 *a.name, a.begin, a.end, *b.name, b.begin, b.end);
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> bytes, std::string_view label) {
  if (bytes.size() < 8)
    file_error(label, "file is {} bytes, too short for the 8-byte header length", bytes.size());
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[static_cast<size_t>(i)];
  if (length > kMaxHeaderBytes)
    file_error(label, "header length {} is over the limit of {} bytes", length, kMaxHeaderBytes);
  if (length > bytes.size() - 8)
    file_error(label, "header length {} runs past the end of the file ({} bytes follow the length)", length,
               bytes.size() - 8);

  const json header = parse_json(bytes.subspan(8, length), label);
  if (!header.is_object()) file_error(label, "header must be a JSON object, got {}", shown(&header));
  SafetensorsHeader result;
  result.data_offset = 8 + length;
  const uint64_t data_size = bytes.size() - result.data_offset;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      result.metadata = parse_metadata(label, entry);
    } else {
      result.tensors.emplace(name, parse_entry(label, name, entry, result.data_offset, data_size));
    }
  }
  check_disjoint(label, result);
  return result;
}

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& format : kFormatDTypes)
    if (format.dtype == dtype) return format.name;
  fail("safetensors", "dtype code {} has no safetensors name", static_cast<int>(dtype));
}

}  // namespace wick::io
