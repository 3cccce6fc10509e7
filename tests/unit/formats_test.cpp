// Readers and writers of model files: every malformed-file class gives a named kexa::Error.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/dtype_convert.h"
#include "formats/gguf.h"
#include "formats/hf_checkpoint.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "util/error.h"

namespace kexa {
namespace {

std::string shared_dir() {
  if (const char* s = std::getenv("KEXA_SHARED")) return s;
  return KEXA_SOURCE_DIR "/../shared";
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/kexa_fmt_" + name; }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs `fn` and returns the kexa::Error text ("" when nothing was thrown).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(expr, text)                                         \
  do {                                                                      \
    std::string msg_ = error_of([&] { (void)(expr); });                     \
    EXPECT_NE(msg_.find(text), std::string::npos) << "error was: '" << msg_ << "'"; \
  } while (0)

// --- little byte builders ---------------------------------------------------------------------

struct Bytes {
  std::string b;
  template <typename T>
  Bytes& pod(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return pod(v); }
  Bytes& u64(uint64_t v) { return pod(v); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Bytes& pad(size_t align) {
    while (b.size() % align) b.push_back('\0');
    return *this;
  }
};

std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  Bytes out;
  out.u64(header.size());
  out.b += header;
  out.b.append(data_bytes, '\0');
  return out.b;
}

// GGUF with one kv and optionally one F32 tensor [n] at the given offset.
std::string gguf_bytes(uint64_t n_tensors, int64_t tensor_len, uint64_t offset, size_t data_bytes) {
  Bytes g;
  g.u32(0x46554747).u32(3).u64(n_tensors).u64(1);
  g.str("general.architecture").u32(8).str("exaone");
  if (n_tensors) {
    g.str("w").u32(1).u64(static_cast<uint64_t>(tensor_len)).u32(0).u64(offset);
  }
  g.pad(32);
  g.b.append(data_bytes, '\0');
  return g.b;
}

// --- safetensors ------------------------------------------------------------------------------

TEST(Safetensors, ReadsTensors) {
  std::string p = temp_path("ok.safetensors");
  std::string h = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
                  R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string bytes = safetensors_bytes(h, 12);
  float one = 1.0f, two = 2.0f;
  std::memcpy(&bytes[8 + h.size()], &one, 4);
  std::memcpy(&bytes[8 + h.size() + 4], &two, 4);
  write_file(p, bytes);
  auto f = safetensors::File::open(p);
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "a");  // sorted by offset
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorView* a = f->find("a");
  ASSERT_NE(a, nullptr);
  float v[2];
  std::memcpy(v, a->data, 8);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.0f);
  EXPECT_EQ(f->find("b")->dtype, DType::BF16);
  EXPECT_EQ(f->find("zzz"), nullptr);
}

TEST(Safetensors, TruncatedFile) {
  std::string p = temp_path("trunc.safetensors");
  write_file(p, "abc");
  EXPECT_ERROR_HAS(safetensors::File::open(p), "truncated safetensors file");
  EXPECT_ERROR_HAS(safetensors::File::open(p), p);
}

TEST(Safetensors, HeaderLengthPastEof) {
  std::string p = temp_path("hdr.safetensors");
  Bytes b;
  b.u64(1000);
  b.b += "{}";
  write_file(p, b.b);
  EXPECT_ERROR_HAS(safetensors::File::open(p), "header length 1000 runs past the end");
}

TEST(Safetensors, BadJson) {
  std::string p = temp_path("json.safetensors");
  write_file(p, safetensors_bytes(R"({"a": {"dtype": )", 0));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "bad safetensors JSON header");
}

TEST(Safetensors, OffsetOutOfRange) {
  std::string p = temp_path("off.safetensors");
  write_file(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "tensor 'w' data_offsets [0, 16] lie outside");
}

TEST(Safetensors, DtypeShapeMismatch) {
  std::string p = temp_path("mismatch.safetensors");
  write_file(p, safetensors_bytes(R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", 8));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "tensor 'w' has 8 bytes but dtype F16 x shape [2, 3] needs 12");
}

TEST(Safetensors, UnknownDtype) {
  std::string p = temp_path("dtype.safetensors");
  write_file(p, safetensors_bytes(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "tensor 'w' has unsupported dtype I64");
}

TEST(Safetensors, Overlap) {
  std::string p = temp_path("overlap.safetensors");
  write_file(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "overlap");
}

TEST(Safetensors, NegativeShape) {
  std::string p = temp_path("neg.safetensors");
  write_file(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8));
  EXPECT_ERROR_HAS(safetensors::File::open(p), "tensor 'a': shape must hold non-negative integers");
}

TEST(Safetensors, WriteReadRoundTrip) {
  std::string p = temp_path("rt.safetensors");
  std::vector<safetensors::WriteTensor> ts;
  ts.push_back({"x.weight", DType::F32, {2, 3}, [](uint8_t* out, size_t n) {
                  ASSERT_EQ(n, 24u);
                  for (int i = 0; i < 6; ++i) {
                    float v = static_cast<float>(i) * 0.5f;
                    std::memcpy(out + 4 * i, &v, 4);
                  }
                }});
  ts.push_back({"y", DType::BF16, {5}, [](uint8_t* out, size_t n) { std::memset(out, 0x3f, n); }});
  safetensors::write(p, ts, {{"format", "pt"}});
  auto f = safetensors::File::open(p);
  const TensorView* x = f->find("x.weight");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{2, 3}));
  float v5;
  std::memcpy(&v5, x->data + 20, 4);
  EXPECT_EQ(v5, 2.5f);
  EXPECT_EQ(f->find("y")->nbytes, 10u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

// --- HF checkpoint folders -------------------------------------------------------------------

std::string make_dir(const std::string& name) {
  std::string d = temp_path(name);
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}

std::string tiny_shard(const std::vector<std::string>& names) {
  nlohmann::json h = nlohmann::json::object();
  for (size_t i = 0; i < names.size(); ++i) {
    h[names[i]] = {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4 * i, 4 * i + 4}}};
  }
  return safetensors_bytes(h.dump(), 4 * names.size());
}

TEST(HFCheckpoint, ShardedIndex) {
  std::string d = make_dir("hf_ok");
  write_file(d + "/config.json", R"({"model_type":"exaone4"})");
  write_file(d + "/a.safetensors", tiny_shard({"x", "y"}));
  write_file(d + "/b.safetensors", tiny_shard({"z"}));
  write_file(d + "/model.safetensors.index.json",
             R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors"}})");
  auto ck = HFCheckpoint::open(d);
  EXPECT_EQ(ck->config()["model_type"], "exaone4");
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_NE(ck->find("z"), nullptr);
  EXPECT_EQ(ck->file_of("z"), d + "/b.safetensors");
}

TEST(HFCheckpoint, MissingTensorNamedInIndex) {
  std::string d = make_dir("hf_missing");
  write_file(d + "/config.json", "{}");
  write_file(d + "/a.safetensors", tiny_shard({"x"}));
  write_file(d + "/model.safetensors.index.json",
             R"({"weight_map":{"x":"a.safetensors","lm_head.weight":"a.safetensors"}})");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "missing tensor 'lm_head.weight'");
}

TEST(HFCheckpoint, MissingShard) {
  std::string d = make_dir("hf_noshard");
  write_file(d + "/config.json", "{}");
  write_file(d + "/model.safetensors.index.json", R"({"weight_map":{"x":"gone.safetensors"}})");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "shard 'gone.safetensors' (holding tensor 'x') is missing");
}

TEST(HFCheckpoint, DuplicateTensorAcrossShards) {
  std::string d = make_dir("hf_dup");
  write_file(d + "/config.json", "{}");
  write_file(d + "/a.safetensors", tiny_shard({"x", "y"}));
  write_file(d + "/b.safetensors", tiny_shard({"y"}));
  write_file(d + "/model.safetensors.index.json",
             R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "duplicate tensor 'y'");
}

TEST(HFCheckpoint, TensorNotListedInIndex) {
  std::string d = make_dir("hf_unlisted");
  write_file(d + "/config.json", "{}");
  write_file(d + "/a.safetensors", tiny_shard({"x", "stray"}));
  write_file(d + "/model.safetensors.index.json", R"({"weight_map":{"x":"a.safetensors"}})");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "tensor 'stray' is not listed in");
}

TEST(HFCheckpoint, SingleFileWins) {
  std::string d = make_dir("hf_single");
  write_file(d + "/config.json", R"({"model_type":"exaone"})");
  write_file(d + "/model.safetensors", tiny_shard({"transformer.wte.weight"}));
  auto ck = HFCheckpoint::open(d + "/");
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"transformer.wte.weight"}));
  EXPECT_EQ(ck->file_of("transformer.wte.weight"), d + "/model.safetensors");
  EXPECT_EQ(ck->find("lm_head.weight"), nullptr);
}

TEST(HFCheckpoint, ShardEscapingFolder) {
  std::string d = make_dir("hf_escape");
  write_file(d + "/config.json", "{}");
  write_file(d + "/model.safetensors.index.json", R"({"weight_map":{"x":"../a.safetensors"}})");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "expected a file name inside");
}

TEST(HFCheckpoint, MissingConfigAndWeights) {
  std::string d = make_dir("hf_empty");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "missing config.json");
  write_file(d + "/config.json", "{ nope");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "config.json: bad JSON");
  write_file(d + "/config.json", "{}");
  EXPECT_ERROR_HAS(HFCheckpoint::open(d), "no model.safetensors");
}

// --- GGUF -------------------------------------------------------------------------------------

TEST(Gguf, MinimalFileWithTensor) {
  std::string p = temp_path("ok.gguf");
  write_file(p, gguf_bytes(1, 4, 0, 16));
  auto f = gguf::File::open(p);
  EXPECT_EQ(f->architecture(), "exaone");
  ASSERT_NE(f->find("w"), nullptr);
  EXPECT_EQ(f->find("w")->nbytes, 16u);
}

TEST(Gguf, BadMagic) {
  std::string p = temp_path("magic.gguf");
  write_file(p, "GGML" + std::string(60, '\0'));
  EXPECT_ERROR_HAS(gguf::File::open(p), "not a GGUF file: bad magic");
}

TEST(Gguf, TruncatedHeader) {
  std::string p = temp_path("trunc.gguf");
  std::string b = gguf_bytes(1, 4, 0, 16);
  write_file(p, b.substr(0, 20));
  EXPECT_ERROR_HAS(gguf::File::open(p), "truncated GGUF file");
}

TEST(Gguf, UnsupportedVersion) {
  std::string p = temp_path("ver.gguf");
  Bytes g;
  g.u32(0x46554747).u32(7).u64(0).u64(0);
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "unsupported GGUF version 7");
}

TEST(Gguf, StringLengthPastEof) {
  std::string p = temp_path("strlen.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(0).u64(1);
  g.str("general.architecture").u32(8).u64(1ull << 40);
  g.b += "exaone";
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "string length 1099511627776 for key 'general.architecture'");
}

TEST(Gguf, UnknownValueType) {
  std::string p = temp_path("vtype.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(0).u64(1);
  g.str("some.key").u32(13).u32(0);
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "unknown GGUF value type 13 for key 'some.key'");
}

TEST(Gguf, AbsurdArrayCount) {
  std::string p = temp_path("arr.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(0).u64(1);
  g.str("a").u32(9).u32(4).u64(1ull << 61).u32(1);
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "array length 2305843009213693952 of uint32 for key 'a'");
}

TEST(Gguf, ArraysNestedTooDeep) {
  std::string p = temp_path("nest.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(0).u64(1);
  g.str("n").u32(9).u32(9).u64(1).u32(9).u64(1).u32(4).u64(1).u32(7);
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "nested deeper than 2 levels in key 'n'");
  // One level of nesting is legal and is skipped.
  Bytes ok;
  ok.u32(0x46554747).u32(3).u64(0).u64(1);
  ok.str("n").u32(9).u32(9).u64(2).u32(4).u64(1).u32(7).u32(8).u64(1).str("x");
  write_file(p, ok.b);
  auto f = gguf::File::open(p);
  EXPECT_EQ(f->get("n")->elem_type, gguf::ValueType::ARRAY);
}

TEST(Gguf, TensorDataOutOfRange) {
  std::string p = temp_path("range.gguf");
  write_file(p, gguf_bytes(1, 8, 0, 16));  // needs 32 bytes, 16 present
  EXPECT_ERROR_HAS(gguf::File::open(p), "tensor 'w' [8] F32 data [0, 32) lies outside the data section of 16 bytes");
  write_file(p, gguf_bytes(1, 4, 1ull << 62, 16));
  EXPECT_ERROR_HAS(gguf::File::open(p), "lies outside the data section");
}

TEST(Gguf, MisalignedTensorOffset) {
  std::string p = temp_path("align.gguf");
  write_file(p, gguf_bytes(1, 1, 4, 64));
  EXPECT_ERROR_HAS(gguf::File::open(p), "not a multiple of the alignment 32");
}

TEST(Gguf, UnknownTensorType) {
  std::string p = temp_path("ttype.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(1).u64(0);
  g.str("w").u32(1).u64(4).u32(99).u64(0);
  g.pad(32);
  g.b.append(64, '\0');
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "tensor 'w' has unknown ggml type id 99");
}

TEST(Gguf, ZeroAndOverflowingDims) {
  std::string p = temp_path("dims.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(1).u64(0);
  g.str("w").u32(2).u64(4).u64(0).u32(0).u64(0);
  g.pad(32);
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "tensor 'w' has invalid dimension 0");
  Bytes h;
  h.u32(0x46554747).u32(3).u64(1).u64(0);
  h.str("w").u32(3).u64(1ull << 31).u64(1ull << 31).u64(1ull << 31).u32(0).u64(0);
  h.pad(32);
  write_file(p, h.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "element count overflows");
}

TEST(Gguf, DuplicateTensorName) {
  std::string p = temp_path("dupt.gguf");
  Bytes g;
  g.u32(0x46554747).u32(3).u64(2).u64(0);
  g.str("w").u32(1).u64(8).u32(0).u64(0);
  g.str("w").u32(1).u64(8).u32(0).u64(32);
  g.pad(32);
  g.b.append(64, '\0');
  write_file(p, g.b);
  EXPECT_ERROR_HAS(gguf::File::open(p), "duplicate tensor name 'w'");
}

TEST(Gguf, WriteReadRoundTrip) {
  std::string p = temp_path("rt.gguf");
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("exaone4"));
  w.set("a.u32", gguf::Value::u32(7));
  w.set("a.i32", gguf::Value::i32(-3));
  w.set("a.u64", gguf::Value::u64(1ull << 40));
  w.set("a.f32", gguf::Value::f32(1e-5f));
  w.set("a.bool", gguf::Value::boolean(true));
  w.set("a.strs", gguf::Value::strings({"x", "", "ü"}));
  w.set("a.bools", gguf::Value::ints(gguf::ValueType::BOOL, {1, 0, 1}));
  w.set("a.i32s", gguf::Value::ints(gguf::ValueType::INT32, {-1, 5}));
  w.set("a.f32s", gguf::Value::floats(gguf::ValueType::FLOAT32, {0.5, -2}));
  w.set("a.u32", gguf::Value::u32(8));  // replaced in place
  w.add_tensor("t0", DType::F32, {3, 2}, [](uint8_t* out, size_t n) {
    for (size_t i = 0; i < n / 4; ++i) {
      float v = static_cast<float>(i);
      std::memcpy(out + 4 * i, &v, 4);
    }
  });
  w.add_tensor("t1", DType::F16, {5}, [](uint8_t* out, size_t n) { std::memset(out, 0xab, n); });
  w.write(p);

  auto f = gguf::File::open(p);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->metadata().size(), 10u);
  EXPECT_EQ(f->metadata()[1].first, "a.u32");
  EXPECT_EQ(f->get("a.u32")->as_int(), 8);
  EXPECT_EQ(f->get("a.u32")->type, gguf::ValueType::UINT32);
  EXPECT_EQ(f->get("a.i32")->as_int(), -3);
  EXPECT_EQ(f->get("a.u64")->as_int(), int64_t{1} << 40);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get("a.f32")->as_float()), 1e-5f);
  EXPECT_TRUE(f->get("a.bool")->as_bool());
  EXPECT_EQ(f->get("a.strs")->as_strings(), (std::vector<std::string>{"x", "", "ü"}));
  EXPECT_EQ(f->get("a.bools")->as_ints(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f->get("a.i32s")->as_ints(), (std::vector<int64_t>{-1, 5}));
  EXPECT_EQ(f->get("a.f32s")->as_floats(), (std::vector<double>{0.5, -2}));
  EXPECT_ERROR_HAS(f->get("a.strs")->as_int("a.strs"), "key 'a.strs' has type array of string");
  const TensorView* t0 = f->find("t0");
  ASSERT_NE(t0, nullptr);
  EXPECT_EQ(t0->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t0->data) % 32, 0u);
  float v5;
  std::memcpy(&v5, t0->data + 20, 4);
  EXPECT_EQ(v5, 5.0f);
  const TensorView* t1 = f->find("t1");
  EXPECT_EQ(t1->nbytes, 10u);
  EXPECT_EQ(t1->data[9], 0xab);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"t0", "t1"}));
}

TEST(Gguf, WriterFailsOnUnwritablePath) {
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("exaone"));
  EXPECT_ERROR_HAS(w.write("/nonexistent-dir/x.gguf"), "/nonexistent-dir/x.gguf: cannot create");
}

TEST(Gguf, WriterFailsWhenDiskFull) {
  // A file-size limit makes write() fail with EFBIG exactly like a full disk; do it in a child
  // so the limit does not leak into other tests.
  std::string p = temp_path("full.gguf");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::str("exaone"));
    w.add_tensor("big", DType::F32, {1 << 16}, [](uint8_t* out, size_t n) { std::memset(out, 0, n); });
    std::string msg = error_of([&] { w.write(p); });
    bool ok = msg.find(p) != std::string::npos && msg.find("write failed") != std::string::npos;
    struct stat st {};
    bool left_nothing = ::stat(p.c_str(), &st) != 0;  // no partial file under the final name
    ::_exit(ok && left_nothing ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Gguf, RealLlamaCppVocabFiles) {
  const std::string dir = shared_dir() + "/fixtures/llamacpp-vocab-gguf/";
  struct Case {
    const char* file;
    const char* model;
    size_t tokens;
    size_t merges;
    int64_t bos;
  } cases[] = {
      {"ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000, 50256},
      {"ggml-vocab-llama-spm.gguf", "llama", 32000, 0, 1},
      {"ggml-vocab-bert-bge.gguf", "bert", 30522, 0, -1},
      {"ggml-vocab-deepseek-coder.gguf", "gpt2", 32256, 31757, -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    auto f = gguf::File::open(dir + c.file);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_TRUE(f->tensors().empty());
    EXPECT_EQ(f->get("tokenizer.ggml.model")->as_string(), c.model);
    EXPECT_EQ(f->get("tokenizer.ggml.tokens")->as_strings().size(), c.tokens);
    EXPECT_EQ(f->get("tokenizer.ggml.token_type")->as_ints().size(), c.tokens);
    if (c.merges) {
      EXPECT_EQ(f->get("tokenizer.ggml.merges")->as_strings().size(), c.merges);
    }
    if (c.bos >= 0) {
      EXPECT_EQ(f->get("tokenizer.ggml.bos_token_id")->as_int(), c.bos);
    }
  }
  auto spm = gguf::File::open(dir + "ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm->get("tokenizer.ggml.scores")->as_floats().size(), 32000u);
  EXPECT_EQ(spm->get("tokenizer.ggml.eos_token_id")->as_int(), 2);
  EXPECT_EQ(spm->get("tokenizer.ggml.unknown_token_id")->as_int(), 0);
  auto bert = gguf::File::open(dir + "ggml-vocab-bert-bge.gguf");
  EXPECT_EQ(bert->get("tokenizer.ggml.seperator_token_id")->as_int(), 102);
  EXPECT_EQ(bert->get("tokenizer.ggml.padding_token_id")->as_int(), 0);
  auto ds = gguf::File::open(dir + "ggml-vocab-deepseek-coder.gguf");
  EXPECT_EQ(ds->get("tokenizer.ggml.pre")->as_string(), "deepseek-coder");
  auto g2 = gguf::File::open(dir + "ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(g2->get("tokenizer.ggml.eos_token_id")->as_int(), 50256);
  EXPECT_EQ(g2->get("tokenizer.ggml.tokens")->as_strings()[50256], "<|endoftext|>");
}

// --- llama2.c ---------------------------------------------------------------------------------

TEST(Llama2c, Stories260kHeader) {
  auto ck = llama2c::Checkpoint::open(shared_dir() + "/fixtures/tinystories-260k/stories260K.bin");
  const llama2c::Config& c = ck->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(ck->at("layers.4.wk").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(ck->at("layers.0.w2").shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(ck->at("wcls").data, ck->at("token_embedding").data);
  // rms_final is followed only by the two RoPE tables (seq_len * hd floats) up to EOF.
  const uint8_t* file_start = ck->at("token_embedding").data - 28;
  EXPECT_EQ(ck->at("rms_final").data + 64 * 4 + 512 * 8 * 4, file_start + 1056540);
  EXPECT_ERROR_HAS(ck->at("nope"), "no tensor 'nope'");

  auto tok = llama2c::Tokenizer::load(shared_dir() + "/fixtures/tinystories-260k/tok512.bin", 512);
  EXPECT_EQ(tok.pieces.size(), 512u);
  EXPECT_EQ(tok.pieces[1], "\n<s>\n");  // llama2.c export wraps BOS/EOS in newlines
  EXPECT_EQ(tok.pieces[2], "\n</s>\n");
  EXPECT_EQ(tok.pieces[3 + 'A'], "<0x41>");
}

TEST(Llama2c, TruncatedCheckpoint) {
  std::string src = shared_dir() + "/fixtures/tinystories-260k/stories260K.bin";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string p = temp_path("short.bin");
  write_file(p, bytes.substr(0, bytes.size() - 4));
  EXPECT_ERROR_HAS(llama2c::Checkpoint::open(p), "has 1056536 bytes but the header");
  write_file(p, bytes.substr(0, 10));
  EXPECT_ERROR_HAS(llama2c::Checkpoint::open(p), "truncated llama2.c checkpoint");
}

// llama2.c rotates pairs (2j, 2j+1) of a head by angle p*theta^(-2j/hd); rotate-half pairs
// (j, j+hd/2) with the same angle. Permuting the weight rows must make the two agree exactly,
// including through a dot product q.k as attention uses it.
TEST(Llama2c, RotateHalfPermutationMatchesPairwiseRope) {
  const int64_t hd = 8, n_heads = 3, in = 5;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  std::vector<float> W(static_cast<size_t>(n_heads * hd * in)), x(static_cast<size_t>(in));
  for (float& v : W) v = nd(rng);
  for (float& v : x) v = nd(rng);
  const std::vector<int64_t> perm = llama2c::rotate_half_row_order(hd);
  ASSERT_EQ(perm, (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
  // Permuted weight: row h*hd + r takes row h*hd + perm[r].
  std::vector<float> Wp(W.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t r = 0; r < hd; ++r)
      for (int64_t c = 0; c < in; ++c)
        Wp[(h * hd + r) * in + c] = W[(h * hd + perm[r]) * in + c];
  auto matvec = [&](const std::vector<float>& M) {
    std::vector<double> y(static_cast<size_t>(n_heads * hd), 0.0);
    for (int64_t r = 0; r < n_heads * hd; ++r)
      for (int64_t c = 0; c < in; ++c) y[r] += double(M[r * in + c]) * x[c];
    return y;
  };
  for (int pos : {0, 1, 7, 123}) {
    std::vector<double> a = matvec(W), b = matvec(Wp);
    for (int64_t h = 0; h < n_heads; ++h) {
      double* va = &a[h * hd];
      double* vb = &b[h * hd];
      for (int64_t j = 0; j < hd / 2; ++j) {
        double ang = pos * std::pow(10000.0, -2.0 * j / hd);
        double c = std::cos(ang), s = std::sin(ang);
        double a0 = va[2 * j], a1 = va[2 * j + 1];  // pairwise (llama2.c)
        va[2 * j] = a0 * c - a1 * s;
        va[2 * j + 1] = a0 * s + a1 * c;
        double b0 = vb[j], b1 = vb[j + hd / 2];  // rotate-half (NEOX)
        vb[j] = b0 * c - b1 * s;
        vb[j + hd / 2] = b0 * s + b1 * c;
      }
      // Same values, in permuted positions: rotated-half[r] == pairwise[perm[r]].
      for (int64_t r = 0; r < hd; ++r) EXPECT_NEAR(vb[r], va[perm[r]], 1e-9) << pos;
    }
    // Attention scores are permutation-invariant when q and k share the permutation.
    std::vector<double> a2 = a, b2 = b;
    double da = 0, db = 0;
    for (int64_t r = 0; r < hd; ++r) {
      da += a[r] * a2[hd + r];
      db += b[r] * b2[hd + r];
    }
    EXPECT_NEAR(da, db, 1e-9);
  }
}

}  // namespace
}  // namespace kexa

// --- element conversions ----------------------------------------------------------------------

namespace kexa {
namespace {

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(DTypeConvert, HalfKnownValuesAndRounding) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);   // below the midpoint to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);   // midpoint ties to even = inf
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie -> even (2)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(from_bits(0x7fc00000)) & 0x7e00, 0x7e00);  // NaN stays NaN
  EXPECT_EQ(f32_to_f16(from_bits(0x7f800000)), 0x7c00);
}

TEST(DTypeConvert, HalfAndBfloatRoundTripEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
    float b = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(b)) continue;
    ASSERT_EQ(f32_to_bf16(b), h) << std::hex << h;
  }
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
}

TEST(DTypeConvert, BfloatRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -7) + std::ldexp(1.0f, -9)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001)))));  // sNaN stays NaN
  uint8_t src[8], dst[4];
  float in[2] = {1.5f, -3.0f};
  std::memcpy(src, in, 8);
  convert_elements(DType::F32, src, DType::BF16, dst, 2);
  uint16_t out[2];
  std::memcpy(out, dst, 4);
  EXPECT_EQ(out[0], 0x3fc0);
  EXPECT_EQ(out[1], 0xc040);
  EXPECT_ERROR_HAS(convert_elements(DType::Q8_0, src, DType::F32, dst, 1), "cannot convert elements of type Q8_0");
}

}  // namespace
}  // namespace kexa
