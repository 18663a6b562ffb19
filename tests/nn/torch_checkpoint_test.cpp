// Our torch.save reader (nn/torch_checkpoint.h) against checkpoints PyTorch 1.13 wrote
// (tests/golden/make_torch_checkpoint_goldens.py): every tensor's name, order, shape, dtype and
// bits. Then hostile and broken input, made here: a pickle naming os.system (and other refused
// globals), crafted pickles for each kind of malformation, ZIP64 and compressed archives,
// truncations at every byte and byte flips. Each must fail with one line that starts with the
// path (or, for a flip that leaves a valid file, load); nothing may crash. The archives are built
// by a small zip writer below, with correct CRCs, so that a mutated pickle reaches the VM.

#include "nn/torch_checkpoint.h"
#include "tests/test_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace diffkd {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using safetensors::Contents;

std::string golden(const std::string& file) { return diffkd::testing::golden_dir() + "/" + file; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}

uint32_t crc32(const std::string& data) {  // bit by bit: independent of the reader's tables
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

// --- a zip writer (stored entries; optionally every size and offset in ZIP64 fields) -----------

struct ZipItem {
  std::string name, data;
  uint16_t method = 0;  // 8 claims deflate (the bytes are left as they are)
};

std::string make_zip(const std::vector<ZipItem>& items, bool zip64 = false) {
  std::string out, dir;
  const uint32_t all_ones = 0xffffffffu;
  for (const ZipItem& item : items) {
    const uint64_t offset = out.size();
    const uint32_t crc = crc32(item.data), size = static_cast<uint32_t>(item.data.size());
    out += le<uint32_t>(0x04034b50) + le<uint16_t>(zip64 ? 45 : 20) + le<uint16_t>(0) + le<uint16_t>(item.method) +
           le<uint16_t>(0) + le<uint16_t>(0x21) + le<uint32_t>(crc) + le<uint32_t>(size) + le<uint32_t>(size) +
           le<uint16_t>(static_cast<uint16_t>(item.name.size())) + le<uint16_t>(0) + item.name + item.data;
    const std::string extra = zip64 ? le<uint16_t>(1) + le<uint16_t>(24) + le<uint64_t>(size) + le<uint64_t>(size) +
                                          le<uint64_t>(offset)
                                    : "";
    dir += le<uint32_t>(0x02014b50) + le<uint16_t>(45) + le<uint16_t>(zip64 ? 45 : 20) + le<uint16_t>(0) +
           le<uint16_t>(item.method) + le<uint16_t>(0) + le<uint16_t>(0x21) + le<uint32_t>(crc) +
           le<uint32_t>(zip64 ? all_ones : size) + le<uint32_t>(zip64 ? all_ones : size) +
           le<uint16_t>(static_cast<uint16_t>(item.name.size())) + le<uint16_t>(static_cast<uint16_t>(extra.size())) +
           le<uint16_t>(0) + le<uint16_t>(0) + le<uint16_t>(0) + le<uint32_t>(0) +
           le<uint32_t>(zip64 ? all_ones : static_cast<uint32_t>(offset)) + item.name + extra;
  }
  const uint64_t dir_offset = out.size(), count = items.size();
  out += dir;
  if (zip64) {
    const uint64_t record = out.size();
    out += le<uint32_t>(0x06064b50) + le<uint64_t>(44) + le<uint16_t>(45) + le<uint16_t>(45) + le<uint32_t>(0) +
           le<uint32_t>(0) + le<uint64_t>(count) + le<uint64_t>(count) + le<uint64_t>(dir.size()) +
           le<uint64_t>(dir_offset);
    out += le<uint32_t>(0x07064b50) + le<uint32_t>(0) + le<uint64_t>(record) + le<uint32_t>(1);
  }
  out += le<uint32_t>(0x06054b50) + le<uint16_t>(0) + le<uint16_t>(0) +
         le<uint16_t>(zip64 ? 0xffff : static_cast<uint16_t>(count)) +
         le<uint16_t>(zip64 ? 0xffff : static_cast<uint16_t>(count)) +
         le<uint32_t>(zip64 ? all_ones : static_cast<uint32_t>(dir.size())) +
         le<uint32_t>(zip64 ? all_ones : static_cast<uint32_t>(dir_offset)) + le<uint16_t>(0);
  return out;
}

// --- pickle fragments, opcode by opcode (protocol 2, as torch.save writes) ------------------------

std::string str(const std::string& s) {
  std::string out = "X";
  return out.append(le<uint32_t>(static_cast<uint32_t>(s.size()))).append(s);
}
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string int64(int64_t v) { return std::string("\x8a\x08", 2) + le<int64_t>(v); }
std::string ints(const std::vector<int64_t>& values) {
  std::string s = "(";
  for (int64_t v : values) s += int64(v);
  return s + "t";
}
const std::string kHooks = global("collections", "OrderedDict") + ")R";

// _rebuild_tensor_v2(("storage", torch.<type>, key, "cpu", numel), offset, size, stride, False, {}).
std::string tensor(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                   const std::vector<int64_t>& stride, const std::string& type = "FloatStorage") {
  return global("torch._utils", "_rebuild_tensor_v2") + "((" + str("storage") + global("torch", type) + str(key) +
         str("cpu") + int64(numel) + "tQ" + int64(offset) + ints(size) + ints(stride) + "\x89" + kHooks + "tR";
}

std::string pickle(const std::string& body) { return "\x80\x02" + body + "."; }

// {"a": 2x3 view, "b": its transpose, "c": a Parameter of a slice} over one storage "0" of 6 floats.
std::string realistic_pickle() {
  return pickle("}q\x00("s + str("a") + tensor("0", 6, 0, {2, 3}, {3, 1}) + "q\x01" + str("b") + "h\x01" + "0" +
                tensor("0", 6, 0, {3, 2}, {1, 3}) + str("c") + global("torch._utils", "_rebuild_parameter") + "(" +
                tensor("0", 6, 1, {2}, {1}) + "\x88" + kHooks + "tR" + "u");
}

std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}
const std::string kSixFloats = floats({0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f});

std::string checkpoint(const std::string& pkl, const std::map<std::string, std::string>& storages = {{"0", kSixFloats}},
                       bool zip64 = false) {
  std::vector<ZipItem> items = {{"ckpt/data.pkl", pkl}};
  for (const auto& [key, data] : storages) items.push_back({"ckpt/data/" + key, data});
  items.push_back({"ckpt/version", "3\n"});
  return make_zip(items, zip64);
}

// --- fixture ------------------------------------------------------------------------------------

class TorchCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("diffkd_TorchCheckpoint_" + std::string(info->name()) + "_" +
                                             std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& file, const std::string& bytes) const {
    const std::string path = (dir_ / file).string();
    write_bytes(path, bytes);
    return path;
  }

  fs::path dir_;
};

// Loading fails with one line that starts with the path and contains `needle`.
void expect_error(const std::string& path, const std::string& needle) {
  try {
    torch_checkpoint::load(path);
    ADD_FAILURE() << path << " loaded; expected an error containing \"" << needle << "\"";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << m;
  }
}

// Loads, or fails with one line naming the file: never anything else. Returns whether it loaded.
bool loads_or_fails_cleanly(const std::string& path) {
  try {
    torch_checkpoint::load(path);
    return true;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return false;
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() &&
         (a.numel() == 0 ||
          std::memcmp(a.raw_data_for_reading(), b.raw_data_for_reading(), a.numel() * itemsize(a.dtype())) == 0);
}

// --- the goldens ---------------------------------------------------------------------------------

class TorchCheckpointGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchCheckpointGolden, LoadsExactlyTheExpectedTensors) {
  const std::string stem = "torch_ckpt_" + GetParam();
  ASSERT_TRUE(torch_checkpoint::looks_like_torch_checkpoint(golden(stem + ".pt")));
  const Contents got = torch_checkpoint::load(golden(stem + ".pt"));
  const Contents want = safetensors::load(golden(stem + ".safetensors"));
  EXPECT_EQ(got.path, golden(stem + ".pt"));
  EXPECT_TRUE(got.metadata.empty());
  const auto names = nlohmann::json::parse(want.metadata.at("names")).get<std::vector<std::string>>();
  ASSERT_EQ(got.tensors.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& [name, t] = got.tensors[i];
    EXPECT_EQ(name, names[i]) << "tensor " << i;
    const Tensor& w = want.at(names[i]);
    EXPECT_EQ(t.shape(), w.shape()) << name;
    EXPECT_EQ(t.dtype(), w.dtype()) << name;
    EXPECT_TRUE(t.device().type == DeviceType::CPU) << name;
    EXPECT_TRUE(same_bytes(t, w)) << name << " differs";
  }
}

INSTANTIATE_TEST_SUITE_P(TorchCheckpoint, TorchCheckpointGolden,
                         ::testing::Values("state_dict", "ddpm_style", "views_dtypes", "opaque", "protocol4"),
                         [](const auto& info) { return info.param; });

TEST_F(TorchCheckpoint, GoldenNamesAndValuesSpotChecks) {
  const Contents ddpm = torch_checkpoint::load(golden("torch_ckpt_ddpm_style.pt"));
  for (const char* name : {"net_model.fc.weight", "net_model.conv.bias", "ema_model.norm.weight", "x_T",
                           "optim.state.0.exp_avg", "optim.state.5.step"})
    EXPECT_TRUE(ddpm.contains(name)) << name;
  EXPECT_FALSE(ddpm.contains("step"));
  EXPECT_EQ(ddpm.at("x_T").shape(), (Shape{2, 2, 4, 4}));

  const Contents v = torch_checkpoint::load(golden("torch_ckpt_views_dtypes.pt"));
  // base = arange(24).reshape(4, 6) * 0.5 - 3, saved once and viewed.
  EXPECT_EQ(v.at("transpose").shape(), (Shape{6, 4}));
  EXPECT_EQ(v.at("transpose").to_vector()[1], 0.0);    // base[1][0]
  EXPECT_EQ(v.at("slice").to_vector()[0], 1.0);        // base[1][2]
  EXPECT_EQ(v.at("row").to_vector()[5], 5.5);          // base[2][5]
  EXPECT_EQ(v.at("nested.tuple.1.deep").to_vector(), (std::vector<double>{6.5, 7.0, 7.5}));
  EXPECT_EQ(v.at("f16").dtype(), DType::F32);
  EXPECT_EQ(v.at("f16").to_vector()[2], 65504.0);
  EXPECT_EQ(v.at("bool").to_vector(), (std::vector<double>{1, 0, 1, 1}));
  EXPECT_EQ(v.at("i64").data_for_reading<int64_t>()[3], int64_t(1) << 62);
  EXPECT_EQ(v.at("scalar").shape(), Shape{});
  EXPECT_EQ(v.at("empty").shape(), (Shape{0, 3}));
  EXPECT_TRUE(v.contains("ints.-1") && v.contains("list.1") && v.contains("param"));

  const Contents o = torch_checkpoint::load(golden("torch_ckpt_opaque.pt"));
  ASSERT_EQ(o.tensors.size(), 3u);  // model.weight, model.bias, w: nothing from the opaque values
  EXPECT_EQ(o.tensors[2].first, "w");
}

TEST_F(TorchCheckpoint, RefusesTheLegacyFormatAndAPickleNamingOsSystem) {
  expect_error(golden("torch_ckpt_legacy.pt"), "legacy torch.save file (torch < 1.6");
  expect_error(golden("torch_ckpt_os_system.pt"), "names the global \"os.system\", which can run code");
  EXPECT_FALSE(torch_checkpoint::looks_like_torch_checkpoint(golden("torch_ckpt_legacy.pt")));
  EXPECT_TRUE(torch_checkpoint::looks_like_torch_checkpoint(golden("torch_ckpt_os_system.pt")));
  EXPECT_FALSE(torch_checkpoint::looks_like_torch_checkpoint(golden("torch_ckpt_opaque.safetensors")));
  EXPECT_FALSE(torch_checkpoint::looks_like_torch_checkpoint((dir_ / "missing.pt").string()));
}

// --- crafted archives ------------------------------------------------------------------------------

TEST_F(TorchCheckpoint, ReadsViewsOfOneStorageFromAZip64Archive) {
  for (bool zip64 : {false, true}) {
    const std::string path = write("views.pt", checkpoint(realistic_pickle(), {{"0", kSixFloats}}, zip64));
    const Contents c = torch_checkpoint::load(path);
    ASSERT_EQ(c.tensors.size(), 3u);
    EXPECT_EQ(c.tensors[0].first, "a");
    EXPECT_EQ(c.tensors[1].first, "b");
    EXPECT_EQ(c.tensors[2].first, "c");
    EXPECT_EQ(c.at("a").to_vector(), (std::vector<double>{0.5, 1.5, 2.5, 3.5, 4.5, 5.5}));
    EXPECT_EQ(c.at("b").to_vector(), (std::vector<double>{0.5, 3.5, 1.5, 4.5, 2.5, 5.5}));
    EXPECT_EQ(c.at("c").to_vector(), (std::vector<double>{1.5, 2.5}));
    EXPECT_TRUE(torch_checkpoint::looks_like_torch_checkpoint(path));
  }
}

TEST_F(TorchCheckpoint, EachMalformationIsOneLineNamingTheFile) {
  const std::string t6 = tensor("0", 6, 0, {6}, {1});
  const struct {
    const char* name;
    std::string bytes;
    const char* needle;
  } cases[] = {
      {"empty", "", "too short for a zip"},
      {"not_zip", "hello, not a checkpoint", "does not start with the zip signature"},
      {"bare_pickle", pickle("}"), "a bare pickle"},
      {"no_end_record", checkpoint(pickle("}")).substr(0, 60), "no zip end-of-central-directory"},
      {"no_pickle", make_zip({{"ckpt/version", "3\n"}}), "without a data.pkl"},
      {"two_pickles", make_zip({{"a/data.pkl", pickle("}")}, {"b/data.pkl", pickle("}")}}), "two pickles"},
      {"compressed", make_zip({{"ckpt/data.pkl", pickle("}"), 8}}), "is compressed (method 8)"},
      {"bad_opcode", checkpoint("\x80\x02\xff."), "unknown or unsupported pickle opcode 0xff"},
      {"inst_opcode", checkpoint("\x80\x02i__main__\nX\n."), "unsupported pickle opcode 0x69 ('i')"},
      {"protocol_9", checkpoint("\x80\x09}."), "pickle protocol 9 is not supported"},
      {"underflow", checkpoint(pickle("R")), "stack underflow"},
      {"underflow_past_mark", checkpoint(pickle("](a")), "stack underflow"},
      {"no_mark", checkpoint(pickle("}t")), "no MARK"},
      {"no_stop", checkpoint("\x80\x02}"), "without a STOP"},
      {"cut_in_opcode", checkpoint("\x80\x02X\x10\x00\x00\x00ab"s), "ends inside this opcode"},
      {"memo_miss", checkpoint(pickle("h\x07")), "memo key 7 was never stored"},
      {"bad_utf8", checkpoint(pickle("X\x02\x00\x00\x00\xc3\x28"s)), "not valid UTF-8"},
      {"eval", checkpoint(pickle(global("builtins", "eval") + str("1") + "\x85R")), "\"builtins.eval\", which can run code"},
      {"stack_global_system",
       checkpoint("\x80\x04" + str("posix") + str("system") + "\x93" + str("true") + "\x85R."), "\"posix.system\""},
      {"subprocess", checkpoint(pickle(global("subprocess", "Popen"))), "\"subprocess.Popen\""},
      {"load_from_bytes", checkpoint(pickle(global("torch.storage", "_load_from_bytes"))), "does not know"},
      {"qtensor", checkpoint(pickle(global("torch._utils", "_rebuild_qtensor"))), "does not know"},
      {"module", checkpoint(pickle(global("torch.nn.modules.linear", "Linear") + ")\x81")),
       "pickles a whole torch.nn module"},
      {"missing_storage", checkpoint(pickle("}(" + str("w") + tensor("9", 6, 0, {6}, {1}) + "u")),
       "storage \"9\" is missing"},
      {"storage_size", checkpoint(pickle("}(" + str("w") + tensor("0", 5, 0, {5}, {1}) + "u")),
       "of 5 FloatStorage elements does not match its entry's 24 bytes"},
      {"past_storage", checkpoint(pickle("}(" + str("w") + tensor("0", 6, 2, {3, 2}, {2, 1}) + "u")),
       "reaches element 7 of a storage of 6 float32 elements"},
      {"negative_stride", checkpoint(pickle("}(" + str("w") + tensor("0", 6, 5, {6}, {-1}) + "u")),
       "must hold non-negative ints"},
      {"size_overflow",
       checkpoint(pickle("}(" + str("w") + tensor("0", 6, 0, {int64_t(1) << 62, 1 << 4}, {0, 0}) + "u")), "overflows"},
      {"stride0_bomb", checkpoint(pickle("}(" + str("w") + tensor("0", 6, 0, {int64_t(1) << 40}, {0}) + "u")),
       "would take more than"},
      {"complex", checkpoint(pickle("}(" + str("w") + tensor("0", 3, 0, {3}, {1}, "ComplexFloatStorage") + "u")),
       "storage type torch.ComplexFloatStorage is not supported"},
      {"not_a_storage", checkpoint(pickle(global("torch._utils", "_rebuild_tensor") + "(" + int64(1) + int64(0) +
                                          ints({1}) + ints({1}) + "tR")),
       "not a storage"},
      {"wrong_arity", checkpoint(pickle(global("torch._utils", "_rebuild_tensor_v2") + ")R")), "takes 6 to 7 arguments"},
      {"pid_shape", checkpoint(pickle(str("storage") + "\x85Q")), "is not (\"storage\""},
      {"top_level_tensor", checkpoint(pickle(t6)), "holds a tensor, not a dict of tensors"},
      {"top_level_opaque", checkpoint(pickle(global("argparse", "Namespace") + ")\x81")),
       "holds an opaque argparse.Namespace instance"},
      {"duplicate_name", checkpoint(pickle("}(" + str("a.b") + t6 + str("a") + "}" + str("b") + t6 + "su")),
       "two tensors flatten to the name \"a.b\""},
      {"holds_itself", checkpoint(pickle("}q\x00"s + str("self") + "h\x00"s + "s")), "nest more than 200 deep"},
      {"setitem_on_int", checkpoint(pickle("K\x01" + str("k") + str("v") + "s")), "cannot add items to an int"},
      {"byteorder",
       make_zip({{"ckpt/data.pkl", pickle("}")}, {"ckpt/byteorder", "big"}}), "byteorder \"big\" is not supported"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    expect_error(write(std::string(c.name) + ".pt", c.bytes), c.needle);
  }
}

TEST_F(TorchCheckpoint, SharedSublistsCannotBlowUpFlattening) {
  // L0 = [t]; L(k+1) = [Lk, Lk]: 2^40 paths to the tensor from 40 lists.
  std::string body = "]q\x00"s + tensor("0", 6, 0, {6}, {1}) + "a0";
  for (int k = 0; k < 40; ++k) body += "h\x00h\x00\x86q\x00" "0"s;
  expect_error(write("doubling.pt", checkpoint(pickle(body + "}" + str("x") + "h\x00s"s))), "share sub-lists many times over");
}

TEST_F(TorchCheckpoint, OpaqueValuesAreSkippedAndTheirTensorsToo) {
  // {"args": Namespace(...) with a tensor in its state, "np": numpy.core.multiarray.scalar(...),
  //  "w": t, (1, 2): t}: only "w" loads.
  const std::string t6 = tensor("0", 6, 0, {6}, {1});
  const std::string pkl = pickle(
      "}(" + str("args") + global("argparse", "Namespace") + ")\x81}" + str("hidden") + t6 + "sb" + str("np") +
      global("numpy.core.multiarray", "scalar") + global("numpy", "dtype") + str("f8") + "\x89\x88\x87R" +
      str("\x00\x00"s) + "\x86R" + str("w") + t6 + "K\x01K\x02\x86" + t6 + "\x88" + t6 + "u");
  const Contents c = torch_checkpoint::load(write("opaque.pt", checkpoint(pkl)));
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].first, "w");
}

TEST_F(TorchCheckpoint, RejectsACorruptStorageByItsCrc) {
  std::string bytes = checkpoint(realistic_pickle());
  const size_t at = bytes.find(kSixFloats);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x10;
  expect_error(write("crc.pt", bytes), "CRC-32");
}

// --- exhaustive damage ----------------------------------------------------------------------------

TEST_F(TorchCheckpoint, TruncatedAtEveryByteFailsCleanly) {
  const std::string crafted = checkpoint(realistic_pickle());
  for (size_t n = 0; n < crafted.size(); ++n)
    EXPECT_FALSE(loads_or_fails_cleanly(write("cut.pt", crafted.substr(0, n)))) << "cut at " << n;
  const std::string pkl = realistic_pickle();
  for (size_t n = 0; n < pkl.size(); ++n)
    EXPECT_FALSE(loads_or_fails_cleanly(write("cut_pickle.pt", checkpoint(pkl.substr(0, n))))) << "pickle cut at " << n;
  const std::string real = read_bytes(golden("torch_ckpt_views_dtypes.pt"));
  ASSERT_GT(real.size(), 1000u);
  for (size_t n = 0; n < real.size(); n += 13)
    EXPECT_FALSE(loads_or_fails_cleanly(write("cut_real.pt", real.substr(0, n)))) << "golden cut at " << n;
}

TEST_F(TorchCheckpoint, FlippedPickleBytesLoadOrFailCleanly) {
  const std::string pkl = realistic_pickle();
  int loaded = 0, failed = 0;
  for (size_t i = 0; i < pkl.size(); ++i)
    for (unsigned char x : {0x01, 0x02, 0x10, 0x80, 0xff}) {
      std::string bad = pkl;
      bad[i] = static_cast<char>(bad[i] ^ x);
      (loads_or_fails_cleanly(write("flip.pt", checkpoint(bad))) ? loaded : failed) += 1;
    }
  EXPECT_GT(failed, 0);
  // Every opcode byte replaced by every other byte value.
  for (size_t i = 2; i < 40; ++i)
    for (int v = 0; v < 256; ++v) {
      std::string bad = pkl;
      bad[i] = static_cast<char>(v);
      (loads_or_fails_cleanly(write("replace.pt", checkpoint(bad))) ? loaded : failed) += 1;
    }
  // Bytes of a real checkpoint, flipped in place (a flip in the pickle or a storage fails its CRC;
  // one in the zip's padding or timestamps may leave a valid file).
  const std::string real = read_bytes(golden("torch_ckpt_state_dict.pt"));
  for (size_t i = 0; i < real.size(); i += 3) {
    std::string bad = real;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (loads_or_fails_cleanly(write("flip_real.pt", bad)) ? loaded : failed) += 1;
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace diffkd
