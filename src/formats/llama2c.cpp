#include "formats/llama2c.h"

#include <cstring>
#include <limits>

#include "util/error.h"

namespace kexa::llama2c {

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& path) {
  std::unique_ptr<Checkpoint> c(new Checkpoint(MappedFile(path)));
  c->parse();
  return c;
}

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& Checkpoint::at(std::string_view name) const {
  const TensorView* t = find(name);
  if (t == nullptr) fail(path(), ": no tensor '", name, "' in the llama2.c checkpoint");
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const TensorView& t : tensors_) out.push_back(t.name);
  return out;
}

void Checkpoint::parse() {
  const std::string& p = file_.path();
  constexpr size_t kHeader = 7 * sizeof(int32_t);
  if (file_.size() < kHeader) {
    fail(p, ": truncated llama2.c checkpoint: ", file_.size(), " bytes, the header needs ", kHeader);
  }
  int32_t h[7];
  std::memcpy(h, file_.data(), kHeader);
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                          "seq_len"};
  for (int i = 0; i < 7; ++i) {
    // Bounds keep every product below 2^62, so the size arithmetic below cannot overflow.
    int64_t v = i == 5 ? (h[i] < 0 ? -int64_t{h[i]} : h[i]) : h[i];
    if (v <= 0 || v > (1 << 20)) fail(p, ": llama2.c header field ", names[i], " = ", h[i], " is out of range");
  }
  Config& c = config_;
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] < 0 ? -int64_t{h[5]} : h[5];
  c.seq_len = h[6];
  if (c.hidden_size % c.n_heads != 0) fail(p, ": llama2.c dim ", c.hidden_size, " is not divisible by n_heads ", c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail(p, ": llama2.c n_heads ", c.n_heads, " is not a multiple of n_kv_heads ", c.n_kv_heads);
  }
  c.head_dim = c.hidden_size / c.n_heads;
  const int64_t hd = c.head_dim;
  if (hd % 2 != 0) fail(p, ": llama2.c head size ", hd, " is odd; RoPE needs pairs");
  const int64_t D = c.hidden_size, F = c.intermediate_size, L = c.n_layers, V = c.vocab_size;
  const int64_t kv = c.n_kv_heads * hd;

  const int64_t expected_floats = V * D + L * D + L * D * D + 2 * L * D * kv + L * D * D + L * D +
                                  3 * L * D * F + D + c.seq_len * hd +
                                  (c.shared_classifier ? 0 : V * D);
  const uint64_t expected = kHeader + static_cast<uint64_t>(expected_floats) * 4;
  if (file_.size() != expected) {
    fail(p, ": llama2.c checkpoint has ", file_.size(), " bytes but the header (dim ", D,
         ", hidden_dim ", F, ", n_layers ", L, ", n_heads ", c.n_heads, ", n_kv_heads ",
         c.n_kv_heads, ", vocab ", V, ", seq_len ", c.seq_len, ", ",
         c.shared_classifier ? "shared" : "separate", " classifier) needs ", expected);
  }

  const uint8_t* base = file_.data() + kHeader;
  size_t off = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    TensorView t;
    t.name = std::move(name);
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.nbytes = static_cast<size_t>(t.numel()) * 4;
    t.data = base + off;
    off += t.nbytes;
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  };
  // Each stacked weight is exposed per layer; layer N's slice follows layer N-1's.
  auto add_stack = [&](const char* what, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < L; ++l) add(concat("layers.", l, ".", what), shape);
  };
  tensors_.reserve(static_cast<size_t>(9 * L + 4));
  add("token_embedding", {V, D});
  add_stack("rms_att", {D});
  add_stack("wq", {c.n_heads * hd, D});
  add_stack("wk", {kv, D});
  add_stack("wv", {kv, D});
  add_stack("wo", {D, c.n_heads * hd});
  add_stack("rms_ffn", {D});
  add_stack("w1", {F, D});
  add_stack("w2", {D, F});
  add_stack("w3", {F, D});
  add("rms_final", {D});
  off += static_cast<size_t>(c.seq_len * hd) * 4;  // freq_cis_real + freq_cis_imag, unused
  if (c.shared_classifier) {
    TensorView t = tensors_[index_.at("token_embedding")];
    t.name = "wcls";
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  } else {
    add("wcls", {V, D});
  }
}

Tokenizer Tokenizer::load(const std::string& path, int64_t expected_vocab) {
  MappedFile f(path);
  const uint8_t* d = f.data();
  const size_t n = f.size();
  if (n < 4) fail(path, ": truncated llama2.c tokenizer: ", n, " bytes");
  Tokenizer t;
  std::memcpy(&t.max_token_length, d, 4);
  if (t.max_token_length <= 0) {
    fail(path, ": llama2.c tokenizer max_token_length ", t.max_token_length, " is not positive");
  }
  size_t pos = 4;
  while (pos < n) {
    if (n - pos < 8) fail(path, ": truncated llama2.c tokenizer entry #", t.pieces.size(), " at offset ", pos);
    float score;
    int32_t len;
    std::memcpy(&score, d + pos, 4);
    std::memcpy(&len, d + pos + 4, 4);
    pos += 8;
    if (len < 0 || static_cast<size_t>(len) > n - pos) {
      fail(path, ": llama2.c tokenizer entry #", t.pieces.size(), " length ", len,
           " runs past the end of the file");
    }
    if (len > t.max_token_length) {
      fail(path, ": llama2.c tokenizer entry #", t.pieces.size(), " length ", len,
           " exceeds max_token_length ", t.max_token_length);
    }
    t.pieces.emplace_back(reinterpret_cast<const char*>(d + pos), static_cast<size_t>(len));
    t.scores.push_back(score);
    pos += static_cast<size_t>(len);
  }
  if (expected_vocab > 0 && static_cast<int64_t>(t.pieces.size()) != expected_vocab) {
    fail(path, ": llama2.c tokenizer has ", t.pieces.size(), " pieces, the checkpoint expects ",
         expected_vocab);
  }
  return t;
}

std::vector<int64_t> rotate_half_row_order(int64_t head_dim) {
  std::vector<int64_t> perm;
  perm.reserve(static_cast<size_t>(head_dim));
  for (int64_t i = 0; i < head_dim; i += 2) perm.push_back(i);
  for (int64_t i = 1; i < head_dim; i += 2) perm.push_back(i);
  return perm;
}

}  // namespace kexa::llama2c
