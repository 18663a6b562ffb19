// safetensors checkpoints and atomic file writes: bit-exact round trips (any strides, 0-d and empty
// tensors, metadata), the byte layout other readers rely on (aligned data, name order), reading
// half-precision and small integer types, and one crafted file per kind of corruption, each of
// which must fail with one line that names the file and the problem.
// Format: https://github.com/huggingface/safetensors

#include "nn/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "autograd/ops.h"
#include "nn/atomic_file.h"
#include "tensor/creation.h"

namespace diffkd {
namespace {

namespace fs = std::filesystem;
using safetensors::Contents;
using safetensors::NamedTensors;

// A fresh folder per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(::testing::TempDir()) / ("diffkd_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  fs::path dir_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string u64_bytes(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// A safetensors file with this header text and data.
std::string file_with(const std::string& header, const std::string& data = "") {
  return u64_bytes(header.size()) + header + data;
}

template <typename T>
Tensor tensor_of(const std::vector<T>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dtype_of<T>::value);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.numel() * itemsize(a.dtype())) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// --- round trips ------------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripsF32F64I64BitExactly) {
  const float f_nan = std::bit_cast<float>(0x7fc12345u);  // a NaN with a payload
  const double d_denormal = std::numeric_limits<double>::denorm_min();
  const NamedTensors tensors = {
      {"f32", tensor_of<float>({1.5f, -0.0f, f_nan, 1e-45f, 3.4e38f, -7.25f}, {2, 3})},
      {"f64", tensor_of<double>({d_denormal, -1e308, 0.1, std::numeric_limits<double>::infinity()},
                                {4, 1})},
      {"i64", tensor_of<int64_t>(
                  {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()},
                  {2, 2})},
  };
  safetensors::save(path("m.safetensors"), tensors);
  const Contents loaded = safetensors::load(path("m.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), 3u);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(loaded.at(name).is_contiguous());
    EXPECT_TRUE(same_bytes(loaded.at(name), t));
  }
}

TEST_F(SafetensorsTest, SavesNonContiguousViewsAsTheirRowMajorValues) {
  const Tensor base = reshape(arange(0, 24, 1, DType::F64), {2, 3, 4});
  const NamedTensors tensors = {
      {"permuted", permute(base, {2, 0, 1})},
      {"sliced", slice(base, 2, 1, 4, 2)},
      {"narrowed", narrow(base, 1, 1, 2)},
      {"broadcast", expand(reshape(arange(3), {3, 1}), {3, 4})},
  };
  safetensors::save(path("views.safetensors"), tensors);
  const Contents loaded = safetensors::load(path("views.safetensors"));
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(t.is_contiguous());
    EXPECT_EQ(loaded.at(name).shape(), t.shape());
    EXPECT_EQ(loaded.at(name).to_vector(), t.to_vector());
  }
}

TEST_F(SafetensorsTest, RoundTripsZeroDimAndEmptyTensors) {
  const NamedTensors tensors = {
      {"scalar", scalar_tensor(2.5, DType::F64)},
      {"empty", Tensor::empty({0}, DType::F32)},
      {"empty_rows", Tensor::empty({3, 0, 2}, DType::I64)},
      {"after", from_vector({1, 2}, {2}, DType::I64)},
  };
  safetensors::save(path("edge.safetensors"), tensors);
  const Contents loaded = safetensors::load(path("edge.safetensors"));
  EXPECT_EQ(loaded.at("scalar").dim(), 0);
  EXPECT_EQ(loaded.at("scalar").item(), 2.5);
  EXPECT_EQ(loaded.at("empty").shape(), (Shape{0}));
  EXPECT_EQ(loaded.at("empty_rows").shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(loaded.at("empty_rows").dtype(), DType::I64);
  EXPECT_EQ(loaded.at("after").to_vector(), (std::vector<double>{1, 2}));
}

TEST_F(SafetensorsTest, RoundTripsMetadataAndAFileWithNoTensors) {
  const safetensors::Metadata metadata = {
      {"format", "pt"}, {"config", R"({"ch": 128})"}, {"note", "line one\nline two, ünïcode"}};
  safetensors::save(path("meta.safetensors"), {}, metadata);
  const Contents loaded = safetensors::load(path("meta.safetensors"));
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_EQ(loaded.metadata, metadata);
}

TEST_F(SafetensorsTest, PadsHeaderWithSpacesSoDataIsAlignedAndOrderedByName) {
  // Three F32 values under "b" and one under "a": whatever the header length, data starts at a
  // multiple of 8 and "a" comes first.
  safetensors::save(path("layout.safetensors"),
                    {{"b", from_vector({1, 2, 3}, {3})}, {"a", from_vector({4}, {1})}});
  const std::string bytes = read_bytes(path("layout.safetensors"));
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ((8 + header_length) % 8, 0u);
  const std::string header = bytes.substr(8, header_length);
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  EXPECT_NE(header.find(R"("a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]})"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find(R"("b":{"data_offsets":[4,16],"dtype":"F32","shape":[3]})"),
            std::string::npos)
      << header;
  ASSERT_EQ(bytes.size(), 8 + header_length + 16);
  float first = 0;
  std::memcpy(&first, bytes.data() + 8 + header_length, 4);
  EXPECT_EQ(first, 4.0f);
}

TEST_F(SafetensorsTest, OutputDoesNotDependOnTheOrderTensorsAreGiven) {
  const Tensor a = from_vector({1, 2}, {2}), b = from_vector({3}, {1}, DType::I64);
  safetensors::save(path("ab.safetensors"), {{"a", a}, {"b", b}}, {{"k", "v"}});
  safetensors::save(path("ba.safetensors"), {{"b", b}, {"a", a}}, {{"k", "v"}});
  EXPECT_EQ(read_bytes(path("ab.safetensors")), read_bytes(path("ba.safetensors")));
}

TEST_F(SafetensorsTest, LoadsTensorsInTheOrderOfTheirDataOffsets) {
  const std::string header = R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                             R"("z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  write_bytes(path("order.safetensors"), file_with(header, u64_bytes(7) + u64_bytes(9)));
  const Contents loaded = safetensors::load(path("order.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].first, "z");
  EXPECT_EQ(loaded.tensors[0].second.item(), 7);
  EXPECT_EQ(loaded.tensors[1].first, "a");
  EXPECT_EQ(loaded.tensors[1].second.item(), 9);
}

// --- other stored types -----------------------------------------------------------------------

TEST_F(SafetensorsTest, ReadsF16AndBF16AsF32) {
  // F16: 1, -2.5, 65504 (largest finite), 2^-24 (smallest subnormal), -0, +inf.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x8000, 0x7c00};
  // BF16: 1, -2.5, 3.140625, largest finite (0x7f7f = 3.3895314e38).
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc020, 0x4049, 0x7f7f};
  std::string data(reinterpret_cast<const char*>(f16.data()), f16.size() * 2);
  data.append(reinterpret_cast<const char*>(bf16.data()), bf16.size() * 2);
  const std::string header = R"({"half":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                             R"("brain":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]}})";
  write_bytes(path("half.safetensors"), file_with(header, data));
  const Contents loaded = safetensors::load(path("half.safetensors"));
  const Tensor& half = loaded.at("half");
  EXPECT_EQ(half.dtype(), DType::F32);
  EXPECT_EQ(half.shape(), (Shape{2, 3}));
  const float* h = half.data<float>();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.5f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(h[4] == 0.0f && std::signbit(h[4]));
  EXPECT_EQ(h[5], std::numeric_limits<float>::infinity());
  EXPECT_EQ(loaded.at("brain").dtype(), DType::F32);
  EXPECT_EQ(loaded.at("brain").to_vector(),
            (std::vector<double>{1.0, -2.5, 3.140625,
                                 static_cast<double>(std::bit_cast<float>(0x7f7f0000u))}));
}

TEST_F(SafetensorsTest, ReadsSmallIntegerTypesAsI64) {
  const int32_t i32[] = {-5, 2147483647};
  const uint8_t u8[] = {0, 255};
  const uint8_t flags[] = {1, 0};
  std::string data(reinterpret_cast<const char*>(i32), 8);
  data.append(reinterpret_cast<const char*>(u8), 2);
  data.append(reinterpret_cast<const char*>(flags), 2);
  const std::string header = R"({"i32":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
                             R"("u8":{"dtype":"U8","shape":[2],"data_offsets":[8,10]},)"
                             R"("mask":{"dtype":"BOOL","shape":[2],"data_offsets":[10,12]}})";
  write_bytes(path("ints.safetensors"), file_with(header, data));
  const Contents loaded = safetensors::load(path("ints.safetensors"));
  EXPECT_EQ(loaded.at("i32").dtype(), DType::I64);
  EXPECT_EQ(loaded.at("i32").to_vector(), (std::vector<double>{-5, 2147483647}));
  EXPECT_EQ(loaded.at("u8").to_vector(), (std::vector<double>{0, 255}));
  EXPECT_EQ(loaded.at("mask").to_vector(), (std::vector<double>{1, 0}));
}

TEST_F(SafetensorsTest, WritesF16RoundingToNearestEvenAndEveryHalfRoundTrips) {
  // Every finite half value, as floats: stored as F16 they must come back bit for bit.
  std::vector<float> halves;
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const uint32_t exponent = (bits >> 10) & 0x1fu;
    if (exponent == 31) continue;  // inf / NaN: below
    const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(bits & 0x3ffu), -24)
                                          : std::ldexp(1.0f + (bits & 0x3ffu) / 1024.0f, static_cast<int>(exponent) - 15);
    halves.push_back((bits & 0x8000u) ? -magnitude : magnitude);
  }
  const Tensor all = from_vector(std::vector<double>(halves.begin(), halves.end()), {static_cast<int64_t>(halves.size())});
  // Rounding: ties to even at 1 + 2^-11 (-> 1) and 1 + 3 * 2^-11 (-> 1 + 2^-9); 65519 -> 65504,
  // 65520 -> inf; half the smallest subnormal (2^-25) -> 0, a bit more -> 2^-24; 0.1 -> nearest.
  const std::vector<double> cases = {1 + std::ldexp(1.0, -11), 1 + 3 * std::ldexp(1.0, -11), 65519, 65520,
                                     std::ldexp(1.0, -25), std::ldexp(1.0, -25) * 1.0001, 0.1, -1e9,
                                     std::numeric_limits<double>::quiet_NaN()};
  const std::vector<double> expected = {1, 1 + std::ldexp(1.0, -9), 65504, INFINITY, 0, std::ldexp(1.0, -24),
                                        0.0999755859375, -INFINITY};
  safetensors::save(path("narrow.safetensors"),
                    {{"all", all}, {"cases", from_vector(cases, {9})}, {"bytes", from_vector({0, 255, 17}, {3}, DType::I64)}},
                    {}, {{"all", "F16"}, {"cases", "F16"}, {"bytes", "U8"}});
  uint64_t header_length = 0;
  std::ifstream(path("narrow.safetensors"), std::ios::binary).read(reinterpret_cast<char*>(&header_length), 8);
  EXPECT_EQ(fs::file_size(path("narrow.safetensors")), 8 + header_length + 2 * halves.size() + 2 * 9 + 3)
      << "F16 is 2 bytes and U8 1 byte an element";
  const Contents loaded = safetensors::load(path("narrow.safetensors"));
  EXPECT_EQ(loaded.at("all").to_vector(), all.to_vector());
  const std::vector<double> got = loaded.at("cases").to_vector();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(got[i], expected[i]) << i;
  EXPECT_TRUE(std::isnan(got[8]));
  EXPECT_EQ(loaded.at("bytes").dtype(), DType::I64);
  EXPECT_EQ(loaded.at("bytes").to_vector(), (std::vector<double>{0, 255, 17}));
  EXPECT_THROW(safetensors::save(path("bad.safetensors"), {{"x", from_vector({256}, {1}, DType::I64)}}, {}, {{"x", "U8"}}),
               Error);
  EXPECT_THROW(safetensors::save(path("bad.safetensors"), {{"x", from_vector({1.5}, {1})}}, {}, {{"x", "U8"}}), Error);
  EXPECT_THROW(safetensors::save(path("bad.safetensors"), {{"x", from_vector({1.5}, {1})}}, {}, {{"y", "F16"}}), Error);
}

// --- lookups and save errors --------------------------------------------------------------------

TEST_F(SafetensorsTest, AtNamesTheFileAndTheTensorsItHas) {
  safetensors::save(path("m.safetensors"), {{"w", zeros({1})}, {"b", zeros({1})}});
  const Contents loaded = safetensors::load(path("m.safetensors"));
  EXPECT_TRUE(loaded.contains("w"));
  EXPECT_FALSE(loaded.contains("x"));
  EXPECT_EQ(error_of([&] { loaded.at("x"); }),
            path("m.safetensors") + ": no tensor named \"x\" (the file has 2: b, w)");
}

TEST_F(SafetensorsTest, SaveRejectsDuplicateReservedAndUndefinedTensors) {
  const std::string p = path("bad.safetensors");
  EXPECT_EQ(error_of([&] {
              safetensors::save(p, {{"w", zeros({1})}, {"w", zeros({2})}});
            }),
            p + ": tensor name \"w\" is given twice");
  EXPECT_EQ(error_of([&] {
              safetensors::save(p, {{"__metadata__", zeros({1})}});
            }),
            p + ": \"__metadata__\" is reserved, not a tensor name");
  EXPECT_EQ(error_of([&] {
              safetensors::save(p, {{"w", Tensor()}});
            }),
            p + ": tensor \"w\" is undefined");
  EXPECT_FALSE(fs::exists(p));
}

TEST_F(SafetensorsTest, SaveIntoAMissingFolderNamesThePath) {
  const std::string p = path("no_such_folder/m.safetensors");
  const std::string error = error_of([&] { safetensors::save(p, {{"w", zeros({1})}}); });
  EXPECT_EQ(error.rfind(p + ": cannot create temp file ", 0), 0u) << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
}

// --- atomic writes ------------------------------------------------------------------------------

TEST_F(SafetensorsTest, AtomicWriteReplacesTheFileAndLeavesNoTempFile) {
  const std::string p = path("out.bin");
  write_file_atomically(p, std::string_view("old contents"));
  write_file_atomically(p, std::string_view("new"));
  EXPECT_EQ(read_bytes(p), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, FailedAtomicWriteKeepsTheOldFileAndRemovesTheTempFile) {
  const std::string p = path("out.bin");
  write_file_atomically(p, std::string_view("old contents"));
  const auto fail_midway = [](const ByteSink& write) {
    write("partial", 7);
    fail("producer gave up");
  };
  EXPECT_EQ(error_of([&] { write_file_atomically(p, fail_midway); }), "producer gave up");
  EXPECT_EQ(read_bytes(p), "old contents");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

// --- corrupt files ------------------------------------------------------------------------------

struct BadFile {
  const char* name;      // the test's name
  std::string bytes;     // the file's contents
  std::string expected;  // the message after "<path>: "
};

// gtest prints a failing case by name rather than as raw bytes.
void PrintTo(const BadFile& file, std::ostream* os) { *os << file.name; }

std::string one_tensor(const std::string& entry, const std::string& data = "") {
  return file_with(R"({"w":)" + entry + "}", data);
}

const std::string kEightBytes(8, '\0');

std::vector<BadFile> bad_files() {
  return {
      {"ShorterThanTheLengthField", "12345",
       "file is 5 bytes, shorter than the 8-byte header length that starts a safetensors file"},
      {"HeaderLengthBeyondTheFile", u64_bytes(4000000) + "{}  ",
       "header length 4000000 is beyond the file size 12"},
      {"HeaderNotJson", file_with(R"({"w": )"),
       "header is not valid JSON: parse error at line 1, column 7: syntax error"},
      {"HeaderNotAnObject", file_with("[1, 2]"), "header must be a JSON object, found array"},
      {"EntryNotAnObject", one_tensor("3"), "tensor \"w\" must be a JSON object, found number"},
      {"EntryWithoutDtype", one_tensor(R"({"shape":[2],"data_offsets":[0,8]})"),
       "tensor \"w\" has no \"dtype\""},
      {"EntryWithoutShape", one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})"),
       "tensor \"w\" has no \"shape\""},
      {"EntryWithoutOffsets", one_tensor(R"({"dtype":"F32","shape":[2]})"),
       "tensor \"w\" has no \"data_offsets\""},
      {"DtypeNotAString", one_tensor(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"),
       "tensor \"w\" dtype must be a string, found 4"},
      {"UnknownDtype", one_tensor(R"({"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]})", "ab"),
       "tensor \"w\" has unknown dtype \"F8_E4M3\" (supported: F32, F64, I64, F16, BF16,"},
      {"NegativeShape",
       one_tensor(R"({"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]})", kEightBytes),
       "tensor \"w\" shape must be a list of non-negative integers, found [2,-1]"},
      {"FractionalShape",
       one_tensor(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})", kEightBytes),
       "tensor \"w\" shape must be a list of non-negative integers, found [2.5]"},
      {"ShapeNotAList",
       one_tensor(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", kEightBytes),
       "tensor \"w\" shape must be a list of non-negative integers, found 2"},
      {"OffsetsReversed",
       one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})", kEightBytes),
       "tensor \"w\" data_offsets must be two integers [begin, end] with begin <= end, found "
       "[8,0]"},
      {"OffsetsNotAPair",
       one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})", kEightBytes),
       "tensor \"w\" data_offsets must be two integers [begin, end] with begin <= end, found "
       "[0,4,8]"},
      {"OffsetsNegative",
       one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", kEightBytes),
       "tensor \"w\" data_offsets must be two integers [begin, end] with begin <= end, found "
       "[-8,0]"},
      {"EndBeyondTheBuffer",
       one_tensor(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", kEightBytes),
       "tensor \"w\" data_offsets [0,16] end beyond the data buffer of 8 bytes"},
      {"SizeDisagreesWithShape",
       one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", kEightBytes),
       "tensor \"w\" has 8 bytes of data but its shape [3] of F32 needs 12"},
      {"ShapeOverflows",
       one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})",
                  kEightBytes),
       "tensor \"w\" has 8 bytes of data but its shape [4294967296,4294967296] of F32 needs more "
       "than 2^64"},
      {"OverlappingTensors",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 std::string(12, '\0')),
       "tensors \"a\" at bytes [0, 8) and \"b\" at bytes [4, 12) overlap"},
      {"GapBetweenTensors",
       file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 std::string(12, '\0')),
       "bytes [4, 8) of the data buffer belong to no tensor (the buffer must be fully covered)"},
      {"UnusedBytesAtTheEnd",
       one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})", kEightBytes),
       "bytes [4, 8) of the data buffer belong to no tensor (the buffer must be fully covered)"},
      {"MetadataNotAnObject", file_with(R"({"__metadata__":5})"),
       "__metadata__ must be an object of strings, found number"},
      {"MetadataValueNotAString", file_with(R"({"__metadata__":{"epoch":5}})"),
       "__metadata__ must be an object of strings, but \"epoch\" is a number"},
      {"DuplicateTensorName",
       file_with(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                 std::string(4, '\0')),
       "header names \"w\" twice"},
  };
}

class SafetensorsBadFileTest : public SafetensorsTest,
                               public ::testing::WithParamInterface<BadFile> {};

TEST_P(SafetensorsBadFileTest, FailsWithOneLineNamingTheFileAndTheProblem) {
  const std::string p = path("bad.safetensors");
  write_bytes(p, GetParam().bytes);
  const std::string error = error_of([&] { safetensors::load(p); });
  EXPECT_EQ(error.rfind(p + ": " + GetParam().expected, 0), 0u) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsBadFileTest, ::testing::ValuesIn(bad_files()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(SafetensorsTest, LoadOfAMissingFileSaysItCannotOpenIt) {
  const std::string p = path("missing.safetensors");
  EXPECT_EQ(error_of([&] { safetensors::load(p); }),
            p + ": cannot open for reading: No such file or directory");
}

TEST_F(SafetensorsTest, LoadOfAFolderSaysItIsNotAFile) {
  EXPECT_EQ(error_of([&] { safetensors::load(dir_.string()); }),
            dir_.string() + ": not a regular file");
}

TEST_F(SafetensorsTest, HeaderLengthOverTheLimitIsRejectedEvenWhenTheFileIsThatLarge) {
  const std::string p = path("huge.safetensors");
  write_bytes(p, u64_bytes(100'000'001));
  fs::resize_file(p, 8 + 100'000'001);  // sparse: costs no disk space
  EXPECT_EQ(error_of([&] { safetensors::load(p); }),
            p + ": header length 100000001 exceeds the limit of 100000000 bytes");
}

}  // namespace
}  // namespace diffkd
