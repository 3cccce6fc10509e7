#include "formats/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "formats/tensor_lookup.h"
#include "util/error.h"

namespace kexa::safetensors {

namespace {

// The reference implementation refuses headers above 100 MB; a larger one is a corrupt length.
constexpr uint64_t kMaxHeader = 100ull << 20;

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") { out = DType::F32; return true; }
  if (s == "F16") { out = DType::F16; return true; }
  if (s == "BF16") { out = DType::BF16; return true; }
  return false;
}

uint64_t as_u64(const nlohmann::json& j, const std::string& path, const std::string& name,
                const char* field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    fail(path, ": tensor '", name, "': ", field, " must hold non-negative integers, got ", j.dump());
  }
  return j.get<uint64_t>();
}

}  // namespace

const char* dtype_to_string(DType type) {
  switch (type) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    default: return nullptr;
  }
}

std::unique_ptr<File> File::open(const std::string& path) {
  auto parse = [](MappedFile m) {
    std::unique_ptr<File> f(new File(std::move(m)));
    f->parse();
    return f;
  };
  return open_tensor_file<File>(path, ".experts.", parse, &File::file_);  // model.layers.N.mlp.experts.*
}

const TensorView* File::find(std::string_view name) const { return find_tensor(tensors_, index_, name); }

std::vector<std::string> File::names() const { return tensor_names(tensors_); }

void File::parse() {
  const std::string& p = file_.path();
  const size_t size = file_.size();
  if (size < 8) fail(p, ": truncated safetensors file: ", size, " bytes, need at least 8");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_.data(), 8);
  if (header_len > size - 8) {
    fail(p, ": safetensors header length ", header_len, " runs past the end of the file (",
         size - 8, " bytes after the length field)");
  }
  if (header_len > kMaxHeader) {
    fail(p, ": safetensors header length ", header_len, " exceeds the ", kMaxHeader, "-byte limit");
  }
  const char* hdr = reinterpret_cast<const char*>(file_.data() + 8);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(hdr, hdr + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(p, ": bad safetensors JSON header: ", e.what());
  }
  if (!j.is_object()) fail(p, ": safetensors header is not a JSON object");
  const size_t data_start = 8 + static_cast<size_t>(header_len);
  const size_t data_size = size - data_start;

  struct Entry {
    uint64_t begin, end;
    size_t idx;
  };
  std::vector<Entry> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(p, ": safetensors __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail(p, ": safetensors __metadata__ value for '", m.key(), "' is not a string");
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(p, ": tensor '", name, "': header entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail(p, ": tensor '", name, "': missing string 'dtype'");
    if (sh == v.end() || !sh->is_array()) fail(p, ": tensor '", name, "': missing array 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2) {
      fail(p, ": tensor '", name, "': 'data_offsets' must be an array [begin, end]");
    }
    TensorView t;
    t.name = name;
    std::string dts = dt->get<std::string>();
    if (!parse_dtype(dts, t.dtype)) {
      fail(p, ": tensor '", name, "' has unsupported dtype ", dts, " (kexa reads F32, F16, BF16)");
    }
    if (sh->size() > 8) fail(p, ": tensor '", name, "' has ", sh->size(), " dimensions");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      uint64_t dim = as_u64(d, p, name, "shape");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim) overflow = true;
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (overflow) fail(p, ": tensor '", name, "' shape ", sh->dump(), " overflows");
    uint64_t begin = as_u64((*off)[0], p, name, "data_offsets");
    uint64_t end = as_u64((*off)[1], p, name, "data_offsets");
    if (begin > end || end > data_size) {
      fail(p, ": tensor '", name, "' data_offsets [", begin, ", ", end,
           "] lie outside the data section of ", data_size, " bytes");
    }
    uint64_t expected = numel * dtype_info(t.dtype)->block_bytes;
    if (end - begin != expected) {
      fail(p, ": tensor '", name, "' has ", end - begin, " bytes but dtype ", dts, " x shape ",
           t.shape_string(), " needs ", expected);
    }
    t.nbytes = static_cast<size_t>(expected);
    t.data = file_.data() + data_start + begin;
    spans.push_back({begin, end, tensors_.size()});
    tensors_.push_back(std::move(t));
  }

  // Tensors must not share bytes: a crafted header could otherwise alias one weight as another.
  std::sort(spans.begin(), spans.end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      fail(p, ": tensors '", tensors_[spans[i - 1].idx].name, "' and '", tensors_[spans[i].idx].name,
           "' overlap in the data section");
    }
  }
  std::vector<TensorView> sorted;
  sorted.reserve(tensors_.size());
  for (const Entry& e : spans) sorted.push_back(std::move(tensors_[e.idx]));
  tensors_ = std::move(sorted);
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

void write(const std::string& path, const std::vector<WriteTensor>& tensors,
           const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<size_t> sizes;
  for (const WriteTensor& t : tensors) {
    const char* ds = dtype_to_string(t.dtype);
    if (ds == nullptr) fail(path, ": cannot write tensor '", t.name, "' as ", dtype_name(t.dtype));
    if (header.contains(t.name)) fail(path, ": duplicate tensor '", t.name, "'");
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(path, ": tensor '", t.name, "' has negative dimension ", d);
      numel *= d;
    }
    size_t n = dtype_bytes(t.dtype, numel);
    header[t.name] = {{"dtype", ds}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    sizes.push_back(n);
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');

  std::string tmp = concat(path, ".tmp.", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) fail(path, ": cannot create ", tmp, ": ", std::strerror(errno));
  auto put = [&](const void* data, size_t n) {
    if (n != 0 && std::fwrite(data, 1, n, f) != n) {
      int err = errno;
      std::fclose(f);
      std::remove(tmp.c_str());
      fail(path, ": write failed: ", std::strerror(err));
    }
  };
  uint64_t len = h.size();
  put(&len, 8);
  put(h.data(), h.size());
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    buf.assign(sizes[i], 0);
    if (tensors[i].produce) {
      try {
        tensors[i].produce(buf.data(), buf.size());
      } catch (...) {
        std::fclose(f);
        std::remove(tmp.c_str());
        throw;
      }
    }
    put(buf.data(), buf.size());
  }
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
    int err = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    fail(path, ": write failed: ", std::strerror(err));
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed on close: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail(path, ": cannot rename ", tmp, " into place: ", std::strerror(err));
  }
}

}  // namespace kexa::safetensors
