#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/wick.h"

using namespace wick;
using namespace wick::io;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor host = t.contiguous().to(Device::cpu());
  const auto* data = static_cast<const uint8_t*>(host.data_ptr());
  return std::vector<uint8_t>(data, data + host.nbytes());
}

std::vector<uint8_t> bytes_of(std::span<const uint8_t> span) {
  return std::vector<uint8_t>(span.begin(), span.end());
}

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
  return out;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A file of `header` (length-prefixed, unpadded) followed by `data_bytes` zero bytes.
std::string file_bytes(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

Tensor bf16_bits(const std::vector<uint16_t>& bits, const Shape& shape) {
  std::vector<bf16> values;
  for (uint16_t b : bits) values.push_back(bf16::from_bits(b));
  return Tensor::from_vector(values, shape);
}

Tensor f16_bits(const std::vector<uint16_t>& bits, const Shape& shape) {
  std::vector<f16> values;
  for (uint16_t b : bits) values.push_back(f16::from_bits(b));
  return Tensor::from_vector(values, shape);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("wick-safetensors-{}-{}", test->name(), getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The names in the test folder, to catch leftover temporary files.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Writes `bytes` to a file in the test folder and expects opening it to fail naming the file.
  void expect_corrupt(const std::string& bytes, std::vector<std::string> fragments) {
    const fs::path path = dir_ / "corrupt.safetensors";
    write_all(path, bytes);
    fragments.push_back("[safetensors] " + path.string() + ": ");
    test::expect_error([&] { SafetensorsFile::open(path); }, fragments);
    // The in-memory entry point gives the same error.
    const std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    fragments.back() = "[safetensors] in memory: ";
    test::expect_error([&] { parse_safetensors_header(span, "in memory"); }, fragments);
  }

  fs::path dir_;
};

// ---- round trips ----

TEST_F(SafetensorsTest, RoundTripsEveryDtypeBitExactly) {
  Generator gen = test::fresh_generator();
  const std::map<std::string, Tensor> tensors = {
      {"f32", test::randn(gen, {3, 5})},
      {"f64", test::randn(gen, {7}, DType::f64)},
      // Zeros of both signs, infinities, NaNs with payloads, subnormals, the largest finite values.
      {"f16", f16_bits({0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e01, 0xfd55, 0x0001, 0x83ff, 0x3c00, 0x7bff,
                        0xfbff, 0x1234},
                       {2, 3, 2})},
      {"bf16", bf16_bits({0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc1, 0xffa5, 0x0001, 0x807f, 0x3f80, 0x7f7f,
                          0xff7f, 0x4049},
                         {4, 3})},
      {"i32", Tensor::from_vector<int32_t>(
                  {std::numeric_limits<int32_t>::min(), -1, 0, 7, std::numeric_limits<int32_t>::max()}, {5})},
      {"i64", Tensor::from_vector<int64_t>(
                  {std::numeric_limits<int64_t>::min(), 3, std::numeric_limits<int64_t>::max()}, {3, 1})},
      {"u8", Tensor::from_vector<uint8_t>({0, 1, 127, 128, 254, 255}, {2, 3})},
      {"bool", Tensor::from_vector<uint8_t>({1, 0, 1, 1}, {4}).to(DType::boolean)},
      {"scalar", Tensor::full({}, 2.5)},
      {"empty", Tensor::zeros({0, 3}, DType::bf16)},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode, \"quoted\""}};
  const fs::path path = dir_ / "all.safetensors";
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(), metadata);
  std::vector<std::string> expected_names;
  for (const auto& entry : tensors) expected_names.push_back(entry.first);
  EXPECT_EQ(file.names(), expected_names);
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    const TensorInfo& info = file.info(name);
    EXPECT_EQ(info.dtype, tensor.dtype());
    EXPECT_EQ(info.format_dtype, safetensors_dtype_name(tensor.dtype()));
    EXPECT_EQ(info.shape, tensor.shape());
    EXPECT_EQ(info.byte_size, tensor.nbytes());
    EXPECT_EQ(bytes_of(file.bytes(name)), bytes_of(tensor));
    EXPECT_EQ(bytes_of(file.view(name)), bytes_of(tensor));
    const Tensor loaded = file.load(name);
    EXPECT_EQ(loaded.dtype(), tensor.dtype());
    EXPECT_EQ(loaded.shape(), tensor.shape());
    EXPECT_EQ(bytes_of(loaded), bytes_of(tensor));
  }
}

TEST_F(SafetensorsTest, WritesThePaddedHeaderAndAlignedLayoutOfTheReferenceLibrary) {
  const fs::path path = dir_ / "layout.safetensors";
  save_safetensors(path,
                   {{"a_bytes", Tensor::zeros({3}, DType::u8)},
                    {"b_half", Tensor::zeros({3}, DType::f16)},
                    {"c_float", Tensor::zeros({1}, DType::f32)},
                    {"d_double", Tensor::zeros({2}, DType::f64)}},
                   {{"format", "pt"}});
  const std::string raw = read_all(path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(raw[static_cast<size_t>(i)]);
  EXPECT_EQ(length % 8, 0u);
  const std::string header = raw.substr(8, length);
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
  // Names appear sorted in the header.
  EXPECT_LT(header.find("\"a_bytes\""), header.find("\"b_half\""));
  EXPECT_LT(header.find("\"b_half\""), header.find("\"c_float\""));
  EXPECT_LT(header.find("\"c_float\""), header.find("\"d_double\""));
  // Larger elements first, then by name, packed without gaps as the reference library writes them.
  const nlohmann::json json = nlohmann::json::parse(header);
  EXPECT_EQ(json["d_double"]["data_offsets"], nlohmann::json({0, 16}));
  EXPECT_EQ(json["c_float"]["data_offsets"], nlohmann::json({16, 20}));
  EXPECT_EQ(json["b_half"]["data_offsets"], nlohmann::json({20, 26}));
  EXPECT_EQ(json["a_bytes"]["data_offsets"], nlohmann::json({26, 29}));
  EXPECT_EQ(json["__metadata__"], nlohmann::json({{"format", "pt"}}));
  EXPECT_EQ(raw.size(), 8 + length + 29);
}

TEST_F(SafetensorsTest, WritesNonContiguousExpandedAndOffsetTensors) {
  Generator gen = test::fresh_generator();
  const Tensor base = test::randn(gen, {4, 6});
  const std::map<std::string, Tensor> tensors = {
      {"transposed", test::non_contiguous(base)},
      {"expanded", base.narrow(0, 1, 1).expand({3, 6})},
      {"narrowed", base.narrow(1, 2, 3)},
  };
  const fs::path path = dir_ / "layouts.safetensors";
  save_safetensors(path, tensors);
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_EQ(file.info(name).shape, tensor.shape());
    EXPECT_EQ(file.load(name).to_vector<float>(), tensor.to_vector<float>());
  }
}

TEST_F(SafetensorsTest, WritesAFileWithoutTensors) {
  const fs::path path = dir_ / "empty.safetensors";
  save_safetensors(path, {}, {{"only", "metadata"}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(file.names().empty());
  EXPECT_EQ(file.metadata().at("only"), "metadata");
}

// ---- views and loads ----

TEST_F(SafetensorsTest, ViewSharesTheMappingAndOutlivesTheFileObject) {
  Generator gen = test::fresh_generator();
  const Tensor w = test::randn(gen, {8, 16});
  const fs::path path = dir_ / "view.safetensors";
  save_safetensors(path, {{"w", w}});
  Tensor view;
  {
    const SafetensorsFile file = SafetensorsFile::open(path);
    view = file.view("w");
    EXPECT_EQ(view.data_ptr(), static_cast<const void*>(file.bytes("w").data()));
    EXPECT_EQ(file.view("w").data_ptr(), view.data_ptr());
    EXPECT_EQ(view.dtype(), DType::f32);
    EXPECT_EQ(view.shape(), w.shape());
    EXPECT_TRUE(view.is_contiguous());
  }
  EXPECT_EQ(view.to_vector<float>(), w.to_vector<float>());
}

TEST_F(SafetensorsTest, LoadCopiesAndConvertsOnTheCpu) {
  Generator gen = test::fresh_generator();
  const Tensor w = test::randn(gen, {5, 7});
  const Tensor h = test::randn(gen, {9}, DType::bf16);
  const fs::path path = dir_ / "load.safetensors";
  save_safetensors(path, {{"w", w}, {"h", h}});
  const SafetensorsFile file = SafetensorsFile::open(path);

  const Tensor w_bf16 = file.load("w", Device::cpu(), DType::bf16);
  EXPECT_EQ(w_bf16.dtype(), DType::bf16);
  EXPECT_EQ(bytes_of(w_bf16), bytes_of(w.to(DType::bf16)));
  EXPECT_EQ(file.load("h", Device::cpu(), DType::f32).to_vector<float>(), h.to_vector<float>());
  EXPECT_EQ(file.load("w", Device::cpu(), DType::f64).to_vector<double>(), w.to_vector<double>());

  // A load is a private, writable copy: the mapping and the file stay as they were.
  const Tensor copy = file.load("w");
  EXPECT_NE(copy.data_ptr(), static_cast<const void*>(file.bytes("w").data()));
  copy.fill_(0.0);
  EXPECT_EQ(file.view("w").to_vector<float>(), w.to_vector<float>());
  EXPECT_EQ(SafetensorsFile::open(path).load("w").to_vector<float>(), w.to_vector<float>());
}

TEST_F(SafetensorsTest, LoadsToCudaAndWritesCudaTensorsWhenAGpuIsPresent) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  Generator gen = test::fresh_generator();
  const Tensor w = test::randn(gen, {6, 10});
  const fs::path path = dir_ / "cuda.safetensors";
  save_safetensors(path, {{"w", test::non_contiguous(w).to(Device::cuda())}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(bytes_of(file.bytes("w")), bytes_of(w));
  const Tensor same = file.load("w", Device::cuda());
  EXPECT_TRUE(same.device().is_cuda());
  EXPECT_EQ(same.to_vector<float>(), w.to_vector<float>());
  const Tensor converted = file.load("w", Device::cuda(), DType::bf16);
  EXPECT_EQ(converted.dtype(), DType::bf16);
  EXPECT_EQ(bytes_of(converted), bytes_of(w.to(DType::bf16)));
}

TEST_F(SafetensorsTest, UnalignedDataCannotBeViewedButLoads) {
  // A 9-byte header puts the data area at file offset 17, so the f32 tensor is not 4-byte aligned.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string padded = header + std::string(9 - header.size() % 8, ' ');
  ASSERT_EQ((8 + padded.size()) % 4, 1u);
  const float values[2] = {1.5f, -3.25f};
  std::string bytes = le64(padded.size()) + padded;
  bytes.append(reinterpret_cast<const char*>(values), sizeof values);
  const fs::path path = dir_ / "unaligned.safetensors";
  write_all(path, bytes);
  const SafetensorsFile file = SafetensorsFile::open(path);
  test::expect_error([&] { file.view("w"); }, {"[safetensors] " + path.string(), "tensor 'w'",
                                               "not a multiple of its 4-byte element size"});
  EXPECT_EQ(file.load("w").to_vector<float>(), std::vector<float>({1.5f, -3.25f}));
  EXPECT_EQ(file.load("w", Device::cpu(), DType::f64).to_vector<double>(), std::vector<double>({1.5, -3.25}));
}

TEST_F(SafetensorsTest, MissingTensorNameIsAClearError) {
  const fs::path path = dir_ / "one.safetensors";
  save_safetensors(path, {{"present", Tensor::zeros({2})}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(file.contains("present"));
  EXPECT_FALSE(file.contains("absent"));
  const std::vector<std::string> fragments = {"[safetensors] " + path.string(), "no tensor 'absent'"};
  test::expect_error([&] { file.info("absent"); }, fragments);
  test::expect_error([&] { file.view("absent"); }, fragments);
  test::expect_error([&] { file.load("absent"); }, fragments);
  test::expect_error([&] { file.bytes("absent"); }, fragments);
}

TEST_F(SafetensorsTest, MissingFileIsAClearError) {
  const fs::path path = dir_ / "nothing.safetensors";
  test::expect_error([&] { SafetensorsFile::open(path); },
                     {"[safetensors] " + path.string(), "cannot open", "No such file"});
  test::expect_error([&] { SafetensorsFile::open(dir_); },
                     {"[safetensors] " + dir_.string(), "not a regular file"});
}

// ---- the reference library's files ----

TEST_F(SafetensorsTest, ReadsTheReferenceLibraryFixture) {
  // Written by tests/io/make_safetensors_fixture.py with the Python safetensors package.
  const fs::path path =
      fs::path(__FILE__).parent_path().parent_path() / "data" / "safetensors_fixture.safetensors";
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{
                                 {"format", "np"}, {"producer", "make_safetensors_fixture.py"}}));
  EXPECT_EQ(file.names(), (std::vector<std::string>{"bf16", "bool", "empty", "f16", "f32", "f64", "i32",
                                                    "i64", "i8", "scalar", "u8"}));

  EXPECT_EQ(file.info("f32").shape, (Shape{2, 3}));
  EXPECT_EQ(file.view("f32").to_vector<float>(), std::vector<float>({-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f}));
  EXPECT_EQ(file.view("f64").to_vector<double>(),
            std::vector<double>({std::numbers::pi, -std::numbers::e, 1e300}));
  EXPECT_EQ(file.info("f16").shape, (Shape{2, 2}));
  EXPECT_EQ(file.view("f16").to_vector<float>(), std::vector<float>({1.0f, -2.5f, 65504.0f, 0x1p-24f}));
  EXPECT_EQ(file.view("bf16").to_vector<float>(), std::vector<float>({1.0f, -0.5f, 3.140625f, -0x1p100f}));
  EXPECT_EQ(file.view("i64").to_vector<int64_t>(),
            std::vector<int64_t>({-(int64_t{1} << 40), int64_t{1} << 62}));
  EXPECT_EQ(file.view("i32").to_vector<int32_t>(), std::vector<int32_t>({-7, 0, 123456}));
  EXPECT_EQ(file.view("u8").to_vector<uint8_t>(), std::vector<uint8_t>({0, 1, 128, 255}));
  EXPECT_EQ(file.info("bool").dtype, DType::boolean);
  EXPECT_EQ(file.view("bool").to_vector<uint8_t>(), std::vector<uint8_t>({1, 0, 1}));
  EXPECT_EQ(file.info("scalar").shape, Shape{});
  EXPECT_EQ(file.load("scalar").item(), 42.0);
  EXPECT_EQ(file.info("empty").shape, (Shape{0, 4}));
  EXPECT_EQ(file.load("empty", Device::cpu(), DType::bf16).numel(), 0);

  // I8 is valid safetensors without a wick dtype: listed and readable as bytes, not loadable.
  const TensorInfo& i8 = file.info("i8");
  EXPECT_EQ(i8.format_dtype, "I8");
  EXPECT_FALSE(i8.dtype.has_value());
  EXPECT_EQ(bytes_of(file.bytes("i8")), std::vector<uint8_t>({0xff, 0x05}));
  const std::vector<std::string> fragments = {"[safetensors] " + path.string(), "tensor 'i8'",
                                              "dtype I8 has no wick dtype"};
  test::expect_error([&] { file.load("i8"); }, fragments);
  test::expect_error([&] { file.view("i8"); }, fragments);
}

// ---- corrupt and hostile headers ----

TEST_F(SafetensorsTest, RejectsTruncatedFiles) {
  expect_corrupt("", {"file is 0 bytes, too short for the 8-byte header length"});
  expect_corrupt(std::string("\x10\0\0\0\0", 5), {"file is 5 bytes, too short"});
}

TEST_F(SafetensorsTest, RejectsAHugeHeaderLength) {
  expect_corrupt(le64(uint64_t{1} << 40) + "{}",
                 {"header length 1099511627776 is over the limit of 104857600"});
  expect_corrupt(le64(~uint64_t{0}) + "{}", {"header length 18446744073709551615 is over the limit"});
}

TEST_F(SafetensorsTest, RejectsAHeaderLongerThanTheFile) {
  expect_corrupt(le64(100) + "{}", {"header length 100 runs past the end of the file (2 bytes follow"});
}

TEST_F(SafetensorsTest, RejectsMalformedJson) {
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F32",)", 0), {"header is not valid JSON"});
  expect_corrupt(file_bytes("{\"w\xff\": 1}", 0), {"header is not valid JSON"});
  expect_corrupt(file_bytes("[1, 2]", 0), {"header must be a JSON object, got [1,2]"});
  expect_corrupt(file_bytes(R"({"w": 5})", 0), {"tensor 'w'", "entry must be an object", "got 5"});
  expect_corrupt(file_bytes(std::string(100, '[') + std::string(100, ']'), 0),
                 {"header nests deeper than 8"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]},
                                 "w": {"dtype": "U8", "shape": [], "data_offsets": [1, 2]}})",
                            2),
                 {"header repeats the key 'w'"});
  expect_corrupt(file_bytes(R"({"__metadata__": {"k": 1}})", 0), {"__metadata__ entry 'k' must be a string"});
  expect_corrupt(file_bytes(R"({"__metadata__": [1]})", 0), {"__metadata__ must be an object of strings"});
}

TEST_F(SafetensorsTest, RejectsBadDtypes) {
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4),
                 {"tensor 'w'", "unknown dtype 'F33' (known: BOOL, U8, I8,"});
  expect_corrupt(file_bytes(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4),
                 {"tensor 'w'", "dtype must be a string, got nothing"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4),
                 {"tensor 'w'", "dtype must be a string, got 4"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}})", 2),
                 {"tensor 'w'", "shape [3] of F4 is 12 bits, not a whole number of bytes"});
}

TEST_F(SafetensorsTest, RejectsBadShapes) {
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 0]}})", 0),
                 {"tensor 'w'", "shape must be an array of non-negative integers, got [-1,2]"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 0]}})", 0),
                 {"tensor 'w'", "non-negative integers, got [2.5]"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 0]}})", 0),
                 {"tensor 'w'", "non-negative integers, got \"2\""});
  expect_corrupt(
      file_bytes(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0),
      {"tensor 'w'", "has more than 2^63 - 1 elements"});
  expect_corrupt(
      file_bytes(R"({"w": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 0]}})", 0),
      {"tensor 'w'", "has more than 2^63 - 1 elements"});
  // 2^61 elements fit the count, but 2^61 × 64 bits do not.
  expect_corrupt(
      file_bytes(R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0),
      {"tensor 'w'", "shape [2305843009213693952] of F64 has a byte size over 64 bits"});
}

TEST_F(SafetensorsTest, RejectsBadOffsets) {
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0]}})", 4),
                 {"tensor 'w'", "data_offsets must be two non-negative integers [begin, end], got [0]"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [-4, 0]}})", 4),
                 {"tensor 'w'", "data_offsets must be two non-negative integers"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [4]}})", 4),
                 {"tensor 'w'", "data_offsets must be two non-negative integers [begin, end], got nothing"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [8, 4]}})", 8),
                 {"tensor 'w'", "data_offsets [8, 4] end before they begin"});
}

TEST_F(SafetensorsTest, RejectsAByteRangeThatDoesNotMatchTheShape) {
  expect_corrupt(
      file_bytes(R"({"lm_head.weight": {"dtype": "F32", "shape": [5, 6], "data_offsets": [0, 100]}})", 100),
      {"tensor 'lm_head.weight': data_offsets [0, 100] hold 100 bytes but shape [5, 6] of F32 needs 120"});
}

TEST_F(SafetensorsTest, RejectsARangeOutsideTheDataArea) {
  expect_corrupt(file_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 16),
                 {"tensor 'w': data_offsets [8, 24] run past the end of the data area (16 bytes)"});
  expect_corrupt(file_bytes(R"({"w": {"dtype": "U8", "shape": [1],
                                     "data_offsets": [18446744073709551615, 18446744073709551616]}})",
                            16),
                 {"tensor 'w'", "data_offsets must be two non-negative integers"});
}

TEST_F(SafetensorsTest, RejectsOverlappingRanges) {
  expect_corrupt(file_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                 "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                            24),
                 {"tensors 'a' (data_offsets [0, 16]) and 'b' (data_offsets [8, 24]) overlap"});
  // A range inside another, beyond the one right after it in start order.
  expect_corrupt(file_bytes(R"({"a": {"dtype": "U8", "shape": [32], "data_offsets": [0, 32]},
                                 "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
                            32),
                 {"tensors 'a' (data_offsets [0, 32]) and 'b' (data_offsets [4, 8]) overlap"});
}

TEST_F(SafetensorsTest, AcceptsEmptyTensorsAnywhereAndSubByteDtypes) {
  const fs::path path = dir_ / "edge.safetensors";
  write_all(path, file_bytes(R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                                 "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]},
                                 "q": {"dtype": "F4", "shape": [2, 3], "data_offsets": [8, 11]}})",
                             11));
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.info("e").byte_size, 0u);
  EXPECT_EQ(file.load("e").numel(), 0);
  EXPECT_EQ(file.info("q").byte_size, 3u);
  EXPECT_EQ(file.info("q").format_dtype, "F4");
}

// ---- sharded checkpoints ----

class SafetensorsCheckpointTest : public SafetensorsTest {
 protected:
  // Two shards and their index: a, b in the first, c in the second.
  void write_sharded() {
    Generator gen = test::fresh_generator();
    a_ = test::randn(gen, {3, 4});
    b_ = test::randn(gen, {5}, DType::bf16);
    c_ = Tensor::from_vector<int64_t>({4, 5, 6}, {3});
    save_safetensors(dir_ / kShard1, {{"a", a_}, {"b", b_}}, {{"format", "pt"}});
    save_safetensors(dir_ / kShard2, {{"c", c_}}, {{"format", "pt"}});
    write_index({{"a", kShard1}, {"b", kShard1}, {"c", kShard2}});
  }
  void write_index(const std::map<std::string, std::string>& weight_map) {
    const nlohmann::json index = {{"metadata", {{"total_size", 80}}}, {"weight_map", weight_map}};
    write_all(index_path(), index.dump(2));
  }
  fs::path index_path() const { return dir_ / "model.safetensors.index.json"; }

  static constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
  static constexpr const char* kShard2 = "model-00002-of-00002.safetensors";
  Tensor a_, b_, c_;
};

TEST_F(SafetensorsCheckpointTest, OpensShardsThroughTheIndex) {
  write_sharded();
  for (const fs::path& path : {dir_, index_path()}) {
    SCOPED_TRACE(path.string());
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
    EXPECT_EQ(checkpoint.path(), index_path());
    EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(checkpoint.files().size(), 2u);
    EXPECT_EQ(checkpoint.file("a").path(), dir_ / kShard1);
    EXPECT_EQ(checkpoint.file("c").path(), dir_ / kShard2);
    EXPECT_EQ(checkpoint.info("b").dtype, DType::bf16);
    EXPECT_EQ(checkpoint.info("c").shape, Shape{3});
    EXPECT_EQ(checkpoint.load("a").to_vector<float>(), a_.to_vector<float>());
    EXPECT_EQ(bytes_of(checkpoint.view("b")), bytes_of(b_));
    EXPECT_EQ(checkpoint.load("b", Device::cpu(), DType::f32).to_vector<float>(), b_.to_vector<float>());
    EXPECT_EQ(checkpoint.load("c").to_vector<int64_t>(), c_.to_vector<int64_t>());
    EXPECT_TRUE(checkpoint.contains("c"));
    EXPECT_FALSE(checkpoint.contains("d"));
    test::expect_error([&] { checkpoint.load("d"); }, {"[safetensors] " + index_path().string(),
                                                       "no tensor 'd' (the checkpoint holds 3 tensors)"});
  }
}

TEST_F(SafetensorsCheckpointTest, OpensASingleFileOrAFolderHoldingOne) {
  const Tensor w = Tensor::full({2, 2}, 1.5);
  save_safetensors(dir_ / "model.safetensors", {{"w", w}});
  for (const fs::path& path : {dir_, dir_ / "model.safetensors"}) {
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(path);
    EXPECT_EQ(checkpoint.path(), dir_ / "model.safetensors");
    EXPECT_EQ(checkpoint.names(), std::vector<std::string>{"w"});
    EXPECT_EQ(checkpoint.load("w").to_vector<float>(), w.to_vector<float>());
  }
}

TEST_F(SafetensorsCheckpointTest, IndexPointingToAMissingShardIsAClearError) {
  write_sharded();
  fs::remove(dir_ / kShard2);
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); },
                     {"[safetensors] " + index_path().string(), std::string("shard '") + kShard2 + "'",
                      "(holding tensor 'c') does not exist"});
}

TEST_F(SafetensorsCheckpointTest, TensorMissingFromItsShardIsAClearError) {
  write_sharded();
  write_index({{"a", kShard1}, {"b", kShard1}, {"c", kShard1}});
  test::expect_error(
      [&] { SafetensorsCheckpoint::open(index_path()); },
      {"[safetensors] " + index_path().string(),
       std::string("tensor 'c' is mapped to shard '") + kShard1 + "', which has no such tensor"});
}

TEST_F(SafetensorsCheckpointTest, BadIndexesAreClearErrors) {
  write_sharded();
  const std::string where = "[safetensors] " + index_path().string();
  write_all(index_path(), "{\"weight_map\": {");
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {where, "not valid JSON"});
  write_all(index_path(), R"({"metadata": {}})");
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {where, "needs a \"weight_map\" object"});
  write_all(index_path(), R"({"weight_map": {"a": 3}})");
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); },
                     {where, "weight_map entry 'a' must name a shard"});
  write_index({{"a", "../elsewhere.safetensors"}});
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {where, "outside the index's folder"});
  write_index({{"a", "/etc/passwd"}});
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {where, "outside the index's folder"});
  // A corrupt shard is reported by the shard's own path.
  write_all(dir_ / kShard2, "short");
  write_index({{"c", kShard2}});
  test::expect_error([&] { SafetensorsCheckpoint::open(dir_); },
                     {"[safetensors] " + (dir_ / kShard2).string(), "too short"});
}

TEST_F(SafetensorsCheckpointTest, FolderWithoutWeightsIsAClearError) {
  test::expect_error(
      [&] { SafetensorsCheckpoint::open(dir_); },
      {"[safetensors] " + dir_.string(), "neither model.safetensors.index.json nor model.safetensors"});
}

// ---- the writer never leaves a half-written file ----

class SafetensorsWriterTest : public SafetensorsTest {
 protected:
  // An existing target whose content must survive a failed save.
  fs::path write_existing() {
    const fs::path path = dir_ / "model.safetensors";
    save_safetensors(path, {{"old", Tensor::full({4}, 7.0)}});
    old_content_ = read_all(path);
    return path;
  }
  void expect_untouched(const fs::path& path) {
    EXPECT_EQ(read_all(path), old_content_);
    EXPECT_EQ(listing(), std::vector<std::string>{path.filename().string()});
  }
  std::string old_content_;
};

TEST_F(SafetensorsWriterTest, ReplacesAnExistingFileAndLeavesNoTemporaryFile) {
  const fs::path path = write_existing();
  save_safetensors(path, {{"new", Tensor::full({2}, 3.0)}});
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(SafetensorsFile::open(path).names(), std::vector<std::string>{"new"});
}

TEST_F(SafetensorsWriterTest, RejectsBadInputBeforeWriting) {
  const fs::path path = write_existing();
  const std::string where = "[safetensors] " + path.string();
  test::expect_error(
      [&] {
        save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}});
      },
      {where, "'__metadata__' is reserved"});
  expect_untouched(path);
  test::expect_error([&] { save_safetensors(path, {{"w", Tensor()}}); }, {where, "tensor 'w' is undefined"});
  expect_untouched(path);
  test::expect_error(
      [&] {
        save_safetensors(path, {{"bad\xff", Tensor::zeros({1})}});
      },
      {where, "cannot encode the header"});
  expect_untouched(path);
}

TEST_F(SafetensorsWriterTest, AFailedWriteKeepsTheExistingFile) {
  const fs::path path = write_existing();
  // Cap the size of files this process may write: the data write then fails with EFBIG halfway through.
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGXFSZ, &ignore, &previous), 0);
  rlimit old_limit{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  try {
    save_safetensors(path, {{"big", Tensor::zeros({1 << 16})}});
    ADD_FAILURE() << "expected a wick::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write the temporary file"), std::string::npos) << e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  sigaction(SIGXFSZ, &previous, nullptr);
  expect_untouched(path);
}

TEST_F(SafetensorsWriterTest, AFailedRenameRemovesTheTemporaryFile) {
  // A non-empty folder under the target's name cannot be replaced by a file.
  const fs::path path = dir_ / "model.safetensors";
  fs::create_directories(path / "inside");
  test::expect_error(
      [&] {
        save_safetensors(path, {{"w", Tensor::zeros({8})}});
      },
      {"[safetensors] " + path.string(), "cannot rename the temporary file"});
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(fs::is_directory(path / "inside"));
}

TEST_F(SafetensorsWriterTest, AMissingFolderIsAClearError) {
  const fs::path path = dir_ / "missing" / "model.safetensors";
  test::expect_error(
      [&] {
        save_safetensors(path, {{"w", Tensor::zeros({1})}});
      },
      {"[safetensors] " + path.string(), "cannot create the temporary file", "No such file"});
  EXPECT_TRUE(listing().empty());
}

}  // namespace
