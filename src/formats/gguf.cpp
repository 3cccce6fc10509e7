#include "formats/gguf.h"

#include <fstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "formats/tensor_lookup.h"
#include "util/error.h"

namespace kexa::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian uint32
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
// Nesting beyond an array of arrays has no use in any known file and only invites stack abuse.
constexpr int kMaxArrayDepth = 2;

const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "uint8";
    case ValueType::INT8: return "int8";
    case ValueType::UINT16: return "uint16";
    case ValueType::INT16: return "int16";
    case ValueType::UINT32: return "uint32";
    case ValueType::INT32: return "int32";
    case ValueType::FLOAT32: return "float32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "uint64";
    case ValueType::INT64: return "int64";
    case ValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

bool is_int_type(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_float_type(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

// Size on disk of a fixed-size scalar; 0 for STRING and ARRAY.
size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    default: return 0;
  }
}

bool known_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

std::string describe(std::string_view key) {
  return key.empty() ? std::string("value") : concat("key '", key, "'");
}

// Bounds-checked little-endian reader over the mapped bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(size_t n, std::string_view what) const {
    if (n > remaining()) {
      fail(path_, ": truncated GGUF file: ", what, " needs ", n, " bytes at offset ", pos_,
           " but only ", remaining(), " remain");
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      fail(path_, ": GGUF string length ", len, " for ", what, " at offset ", pos_ - 8,
           " runs past the end of the file (", remaining(), " bytes remain)");
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  void skip(size_t n, std::string_view what) {
    need(n, what);
    pos_ += n;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

int64_t read_int_scalar(Cursor& c, ValueType t, std::string_view what) {
  switch (t) {
    case ValueType::UINT8: return c.read<uint8_t>(what);
    case ValueType::INT8: return c.read<int8_t>(what);
    case ValueType::UINT16: return c.read<uint16_t>(what);
    case ValueType::INT16: return c.read<int16_t>(what);
    case ValueType::UINT32: return c.read<uint32_t>(what);
    case ValueType::INT32: return c.read<int32_t>(what);
    // Values above INT64_MAX wrap; no known key uses them and the type tag is kept for writing.
    case ValueType::UINT64: return static_cast<int64_t>(c.read<uint64_t>(what));
    case ValueType::INT64: return c.read<int64_t>(what);
    default: return 0;
  }
}

double read_float_scalar(Cursor& c, ValueType t, std::string_view what) {
  if (t == ValueType::FLOAT32) return c.read<float>(what);
  return c.read<double>(what);
}

// Reads an array body (after the ARRAY tag). Nested arrays are validated and skipped: the Value
// keeps elem_type ARRAY with an empty list, since no consumer needs their contents.
void read_array(Cursor& c, Value& out, const std::string& path, const std::string& key, int depth);

ValueType read_type_tag(Cursor& c, const std::string& path, const std::string& key) {
  uint32_t raw = c.read<uint32_t>(concat("type of ", describe(key)));
  if (!known_type(raw)) fail(path, ": unknown GGUF value type ", raw, " for ", describe(key));
  return static_cast<ValueType>(raw);
}

void read_array(Cursor& c, Value& out, const std::string& path, const std::string& key, int depth) {
  if (depth > kMaxArrayDepth) {
    fail(path, ": GGUF arrays nested deeper than ", kMaxArrayDepth, " levels in ", describe(key));
  }
  ValueType elem = read_type_tag(c, path, key);
  uint64_t count = c.read<uint64_t>(concat("array length of ", describe(key)));
  out.type = ValueType::ARRAY;
  out.elem_type = elem;
  // Every element takes at least this many bytes, which bounds the count before any allocation.
  size_t min_elem = elem == ValueType::STRING ? 8 : elem == ValueType::ARRAY ? 12 : scalar_size(elem);
  if (count > c.remaining() / min_elem) {
    fail(path, ": GGUF array length ", count, " of ", type_name(elem), " for ", describe(key),
         " runs past the end of the file (", c.remaining(), " bytes remain)");
  }
  size_t n = static_cast<size_t>(count);
  if (elem == ValueType::STRING) {
    std::vector<std::string> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.push_back(c.read_string(concat(describe(key), "[", i, "]")));
    out.data = std::move(v);
  } else if (elem == ValueType::ARRAY) {
    for (size_t i = 0; i < n; ++i) {
      Value inner;
      read_array(c, inner, path, key, depth + 1);
    }
    out.data = std::vector<int64_t>{};
  } else if (is_float_type(elem)) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = read_float_scalar(c, elem, key);
    out.data = std::move(v);
  } else if (elem == ValueType::BOOL) {
    std::vector<int64_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = c.read<uint8_t>(key) != 0;
    out.data = std::move(v);
  } else {
    std::vector<int64_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = read_int_scalar(c, elem, key);
    out.data = std::move(v);
  }
}

Value read_value(Cursor& c, ValueType t, const std::string& path, const std::string& key) {
  Value v;
  v.type = t;
  if (t == ValueType::STRING) {
    v.data = c.read_string(describe(key));
  } else if (t == ValueType::ARRAY) {
    read_array(c, v, path, key, 1);
  } else if (t == ValueType::BOOL) {
    v.data = c.read<uint8_t>(key) != 0;
  } else if (is_float_type(t)) {
    v.data = read_float_scalar(c, t, key);
  } else {
    v.data = read_int_scalar(c, t, key);
  }
  return v;
}

[[noreturn]] void wrong_type(std::string_view key, const Value& v, const char* wanted) {
  fail("GGUF ", describe(key), " has type ", type_name(v.type),
       v.type == ValueType::ARRAY ? concat(" of ", type_name(v.elem_type)) : std::string(),
       ", expected ", wanted);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Value

int64_t Value::as_int(std::string_view key) const {
  if (!is_int_type(type)) wrong_type(key, *this, "an integer");
  return std::get<int64_t>(data);
}

double Value::as_float(std::string_view key) const {
  if (is_float_type(type)) return std::get<double>(data);
  if (is_int_type(type)) return static_cast<double>(std::get<int64_t>(data));
  wrong_type(key, *this, "a number");
}

bool Value::as_bool(std::string_view key) const {
  if (type != ValueType::BOOL) wrong_type(key, *this, "bool");
  return std::get<bool>(data);
}

const std::string& Value::as_string(std::string_view key) const {
  if (type != ValueType::STRING) wrong_type(key, *this, "string");
  return std::get<std::string>(data);
}

const std::vector<int64_t>& Value::as_ints(std::string_view key) const {
  if (type != ValueType::ARRAY || !(is_int_type(elem_type) || elem_type == ValueType::BOOL)) {
    wrong_type(key, *this, "an array of integers");
  }
  return std::get<std::vector<int64_t>>(data);
}

const std::vector<double>& Value::as_floats(std::string_view key) const {
  if (type != ValueType::ARRAY || !is_float_type(elem_type)) {
    wrong_type(key, *this, "an array of floats");
  }
  return std::get<std::vector<double>>(data);
}

const std::vector<std::string>& Value::as_strings(std::string_view key) const {
  if (type != ValueType::ARRAY || elem_type != ValueType::STRING) {
    wrong_type(key, *this, "an array of strings");
  }
  return std::get<std::vector<std::string>>(data);
}

Value Value::u32(uint32_t v) { return Value{ValueType::UINT32, ValueType::UINT32, int64_t{v}}; }
Value Value::i32(int32_t v) { return Value{ValueType::INT32, ValueType::UINT32, int64_t{v}}; }
Value Value::u64(uint64_t v) {
  return Value{ValueType::UINT64, ValueType::UINT32, static_cast<int64_t>(v)};
}
Value Value::f32(float v) { return Value{ValueType::FLOAT32, ValueType::UINT32, double{v}}; }
Value Value::boolean(bool v) { return Value{ValueType::BOOL, ValueType::UINT32, v}; }
Value Value::str(std::string v) { return Value{ValueType::STRING, ValueType::UINT32, std::move(v)}; }
Value Value::strings(std::vector<std::string> v) {
  return Value{ValueType::ARRAY, ValueType::STRING, std::move(v)};
}
Value Value::ints(ValueType elem, std::vector<int64_t> v) {
  if (!(is_int_type(elem) || elem == ValueType::BOOL)) {
    fail("GGUF integer array with element type ", type_name(elem));
  }
  return Value{ValueType::ARRAY, elem, std::move(v)};
}
Value Value::floats(ValueType elem, std::vector<double> v) {
  if (!is_float_type(elem)) fail("GGUF float array with element type ", type_name(elem));
  return Value{ValueType::ARRAY, elem, std::move(v)};
}

// ---------------------------------------------------------------------------------------------
// File

std::unique_ptr<File> File::open(const std::string& path) {
  auto parse = [](MappedFile m) {
    std::unique_ptr<File> f(new File(std::move(m)));
    f->parse();
    return f;
  };
  return open_tensor_file<File>(path, "_exps.", parse, &File::file_);  // stacked experts: blk.N.ffn_*_exps.
}

const Value* File::get(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::string File::architecture() const {
  const Value* v = get("general.architecture");
  if (v == nullptr) fail(path(), ": GGUF metadata has no general.architecture");
  if (v->type != ValueType::STRING) {
    fail(path(), ": GGUF general.architecture has type ", type_name(v->type), ", expected string");
  }
  return v->as_string();
}

bool File::rewrite_in_place(std::string_view name, const std::function<void(const TensorView&, uint8_t*)>& rewrite) {
  auto it = tensor_index_.find(name);
  if (it == tensor_index_.end()) return false;
  TensorView& t = tensors_[it->second];
  file_.write_range(t.data, t.nbytes, [&](uint8_t* bytes) { rewrite(t, bytes); });
  return true;
}

const TensorView* File::find(std::string_view name) const { return find_tensor(tensors_, tensor_index_, name); }

std::vector<std::string> File::names() const { return tensor_names(tensors_); }

void File::parse() {
  const std::string& p = file_.path();
  Cursor c(file_.data(), file_.size(), p);
  if (file_.size() < 4) fail(p, ": not a GGUF file: ", file_.size(), " bytes, too short for the magic");
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    fail(p, ": not a GGUF file: bad magic 0x", [&] {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%08x", magic);
      return std::string(buf);
    }(), " (expected \"GGUF\")");
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    fail(p, ": unsupported GGUF version ", version_, " (kexa reads versions 2 and 3)");
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key-value pair takes at least 12 bytes (empty key, type tag); a tensor info at least 24.
  if (n_kv > c.remaining() / 12) {
    fail(p, ": GGUF metadata count ", n_kv, " is impossible for a file of ", file_.size(), " bytes");
  }
  if (n_tensors > c.remaining() / 24) {
    fail(p, ": GGUF tensor count ", n_tensors, " is impossible for a file of ", file_.size(),
         " bytes");
  }

  metadata_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(concat("metadata key #", i));
    ValueType t = read_type_tag(c, p, key);
    Value v = read_value(c, t, p, key);
    if (key_index_.count(key) != 0) fail(p, ": duplicate GGUF metadata key '", key, "'");
    key_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(v));
  }

  if (const Value* a = get("general.alignment")) {
    if (a->type != ValueType::UINT32 && a->type != ValueType::INT32 &&
        a->type != ValueType::UINT64) {
      fail(p, ": GGUF general.alignment has type ", type_name(a->type), ", expected uint32");
    }
    int64_t al = a->as_int();
    if (al <= 0 || (al & (al - 1)) != 0 || al > (1 << 20)) {
      fail(p, ": GGUF general.alignment ", al, " is not a power of two up to 1 MiB");
    }
    alignment_ = static_cast<size_t>(al);
  }

  struct Info {
    uint64_t offset;
  };
  std::vector<Info> infos;
  tensors_.reserve(static_cast<size_t>(n_tensors));
  infos.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorView t;
    t.name = c.read_string(concat("tensor name #", i));
    uint32_t n_dims = c.read<uint32_t>(concat("dimension count of tensor '", t.name, "'"));
    if (n_dims > kMaxDims) {
      fail(p, ": tensor '", t.name, "' has ", n_dims, " dimensions, GGUF allows at most ", kMaxDims);
    }
    std::vector<int64_t> ne(n_dims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = c.read<uint64_t>(concat("shape of tensor '", t.name, "'"));
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(p, ": tensor '", t.name, "' has invalid dimension ", dim, " (ne[", d, "])");
      }
      if (static_cast<int64_t>(dim) > std::numeric_limits<int64_t>::max() / numel) {
        fail(p, ": tensor '", t.name, "' element count overflows 64 bits");
      }
      numel *= static_cast<int64_t>(dim);
      ne[d] = static_cast<int64_t>(dim);
    }
    uint32_t type_id = c.read<uint32_t>(concat("type of tensor '", t.name, "'"));
    const DTypeInfo* info = dtype_info_by_id(type_id);
    if (info == nullptr) fail(p, ": tensor '", t.name, "' has unknown ggml type id ", type_id);
    t.dtype = static_cast<DType>(type_id);
    if (!ne.empty() && ne[0] % info->block_size != 0) {
      fail(p, ": tensor '", t.name, "' of type ", info->name, " has row length ", ne[0],
           ", not a multiple of the block size ", info->block_size);
    }
    if (static_cast<uint64_t>(numel / info->block_size) >
        std::numeric_limits<size_t>::max() / info->block_bytes) {
      fail(p, ": tensor '", t.name, "' byte size overflows");
    }
    t.nbytes = static_cast<size_t>(numel / info->block_size) * info->block_bytes;
    t.shape.assign(ne.rbegin(), ne.rend());
    uint64_t offset = c.read<uint64_t>(concat("data offset of tensor '", t.name, "'"));
    if (offset % alignment_ != 0) {
      fail(p, ": tensor '", t.name, "' data offset ", offset, " is not a multiple of the alignment ",
           alignment_);
    }
    if (tensor_index_.count(t.name) != 0) fail(p, ": duplicate tensor name '", t.name, "'");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
    infos.push_back({offset});
  }

  // The data section starts at the next multiple of the alignment after the header.
  size_t header_end = c.pos();
  size_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > file_.size()) {
    if (!tensors_.empty()) {
      fail(p, ": truncated GGUF file: data section would start at ", data_start,
           " but the file has ", file_.size(), " bytes");
    }
    data_start = file_.size();
  }
  size_t data_size = file_.size() - data_start;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorView& t = tensors_[i];
    uint64_t off = infos[i].offset;
    if (off > data_size || t.nbytes > data_size - off) {
      fail(p, ": tensor '", t.name, "' ", t.shape_string(), " ", dtype_name(t.dtype), " data [",
           off, ", ", off + t.nbytes, ") lies outside the data section of ", data_size, " bytes");
    }
    t.data = file_.data() + data_start + off;
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

void Writer::set(std::string key, Value value) {
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void Writer::add_tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                        Producer produce) {
  const DTypeInfo* info = dtype_info(dtype);
  if (info == nullptr) fail("GGUF writer: tensor '", name, "' has unknown type");
  if (shape.empty() || shape.size() > kMaxDims) {
    fail("GGUF writer: tensor '", name, "' needs 1 to ", kMaxDims, " dimensions, got ", shape.size());
  }
  for (int64_t d : shape) {
    if (d <= 0) fail("GGUF writer: tensor '", name, "' has dimension ", d);
  }
  if (shape.back() % info->block_size != 0) {
    fail("GGUF writer: tensor '", name, "' row length ", shape.back(),
         " is not a multiple of the block size ", info->block_size, " of ", info->name);
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) fail("GGUF writer: duplicate tensor '", name, "'");
  }
  tensors_.push_back({std::move(name), dtype, std::move(shape), std::move(produce)});
}

namespace {

class Output {
 public:
  Output(const std::string& tmp_path, const std::string& final_path)
      : tmp_(tmp_path), final_(final_path) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (f_ == nullptr) fail(final_, ": cannot create ", tmp_, ": ", std::strerror(errno));
  }
  ~Output() {
    if (f_ != nullptr) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  void bytes(const void* p, size_t n) {
    if (n != 0 && std::fwrite(p, 1, n, f_) != n) {
      fail(final_, ": write failed after ", written_, " bytes: ", std::strerror(errno));
    }
    written_ += n;
  }
  template <typename T>
  void pod(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(size_t alignment) {
    static const uint8_t zeros[64] = {};
    size_t pad = (alignment - written_ % alignment) % alignment;
    while (pad > 0) {
      size_t n = pad < sizeof zeros ? pad : sizeof zeros;
      bytes(zeros, n);
      pad -= n;
    }
  }
  size_t written() const { return written_; }

  void commit() {
    if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) {
      fail(final_, ": write failed: ", std::strerror(errno));
    }
    FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) fail(final_, ": write failed on close: ", std::strerror(errno));
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
      fail(final_, ": cannot rename ", tmp_, " into place: ", std::strerror(errno));
    }
    committed_ = true;
  }

 private:
  std::string tmp_, final_;
  FILE* f_ = nullptr;
  size_t written_ = 0;
  bool committed_ = false;
};

void write_scalar(Output& out, ValueType t, const Value& v) {
  switch (t) {
    case ValueType::UINT8: out.pod<uint8_t>(static_cast<uint8_t>(std::get<int64_t>(v.data))); break;
    case ValueType::INT8: out.pod<int8_t>(static_cast<int8_t>(std::get<int64_t>(v.data))); break;
    case ValueType::UINT16: out.pod<uint16_t>(static_cast<uint16_t>(std::get<int64_t>(v.data))); break;
    case ValueType::INT16: out.pod<int16_t>(static_cast<int16_t>(std::get<int64_t>(v.data))); break;
    case ValueType::UINT32: out.pod<uint32_t>(static_cast<uint32_t>(std::get<int64_t>(v.data))); break;
    case ValueType::INT32: out.pod<int32_t>(static_cast<int32_t>(std::get<int64_t>(v.data))); break;
    case ValueType::UINT64: out.pod<uint64_t>(static_cast<uint64_t>(std::get<int64_t>(v.data))); break;
    case ValueType::INT64: out.pod<int64_t>(std::get<int64_t>(v.data)); break;
    case ValueType::FLOAT32: out.pod<float>(static_cast<float>(std::get<double>(v.data))); break;
    case ValueType::FLOAT64: out.pod<double>(std::get<double>(v.data)); break;
    case ValueType::BOOL: out.pod<uint8_t>(std::get<bool>(v.data) ? 1 : 0); break;
    case ValueType::STRING: out.str(std::get<std::string>(v.data)); break;
    case ValueType::ARRAY: break;
  }
}

void write_int_elem(Output& out, ValueType t, int64_t x) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL:
      out.pod<uint8_t>(static_cast<uint8_t>(x)); break;
    case ValueType::UINT16: case ValueType::INT16: out.pod<uint16_t>(static_cast<uint16_t>(x)); break;
    case ValueType::UINT32: case ValueType::INT32: out.pod<uint32_t>(static_cast<uint32_t>(x)); break;
    default: out.pod<int64_t>(x); break;
  }
}

void write_value(Output& out, const std::string& key, const Value& v) {
  out.pod<uint32_t>(static_cast<uint32_t>(v.type));
  if (v.type != ValueType::ARRAY) {
    write_scalar(out, v.type, v);
    return;
  }
  out.pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
  if (v.elem_type == ValueType::STRING) {
    const auto& s = v.as_strings(key);
    out.pod<uint64_t>(s.size());
    for (const std::string& x : s) out.str(x);
  } else if (is_float_type(v.elem_type)) {
    const auto& f = v.as_floats(key);
    out.pod<uint64_t>(f.size());
    for (double x : f) {
      if (v.elem_type == ValueType::FLOAT32) {
        out.pod<float>(static_cast<float>(x));
      } else {
        out.pod<double>(x);
      }
    }
  } else if (v.elem_type == ValueType::ARRAY) {
    fail("GGUF writer: nested array for key '", key, "' is not supported");
  } else {
    const auto& n = v.as_ints(key);
    out.pod<uint64_t>(n.size());
    for (int64_t x : n) write_int_elem(out, v.elem_type, x);
  }
}

}  // namespace

void Writer::write(const std::string& path, size_t alignment) const {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    fail(path, ": GGUF alignment ", alignment, " is not a power of two");
  }
  // Keep general.alignment consistent with the layout actually written.
  std::vector<std::pair<std::string, Value>> meta = metadata_;
  bool has_alignment = false;
  for (auto& kv : meta) {
    if (kv.first == "general.alignment") {
      kv.second = Value::u32(static_cast<uint32_t>(alignment));
      has_alignment = true;
    }
  }
  if (!has_alignment && alignment != 32) {
    meta.emplace_back("general.alignment", Value::u32(static_cast<uint32_t>(alignment)));
  }

  std::string tmp = concat(path, ".tmp.", ::getpid());
  Output out(tmp, path);
  out.pod<uint32_t>(kMagic);
  out.pod<uint32_t>(3);
  out.pod<uint64_t>(tensors_.size());
  out.pod<uint64_t>(meta.size());
  for (const auto& [key, value] : meta) {
    out.str(key);
    write_value(out, key, value);
  }
  std::vector<size_t> sizes;
  size_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    size_t nbytes = dtype_bytes(t.dtype, numel);
    sizes.push_back(nbytes);
    out.str(t.name);
    out.pod<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) out.pod<uint64_t>(*it);
    out.pod<uint32_t>(static_cast<uint32_t>(t.dtype));
    out.pod<uint64_t>(offset);
    offset += (nbytes + alignment - 1) / alignment * alignment;
  }
  out.pad_to(alignment);
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    buf.assign(sizes[i], 0);
    tensors_[i].produce(buf.data(), buf.size());
    out.bytes(buf.data(), buf.size());
    out.pad_to(alignment);
  }
  out.commit();
}

bool has_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace kexa::gguf
