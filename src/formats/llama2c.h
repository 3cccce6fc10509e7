// Andrej Karpathy's llama2.c checkpoint format (legacy version 0) and its tokenizer.bin.
// Checkpoint: 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means an untied classifier follows the weights), then float32
// weights: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// freq_cis_real, freq_cis_imag [, wcls]. RoPE rotates adjacent pairs (i, i+1).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"
#include "formats/transformer_shape.h"
#include "util/mapped_file.h"

namespace kexa::llama2c {

// The header's dim and hidden_dim are hidden_size and intermediate_size; head_dim is dim / n_heads.
struct Config : TransformerShape {
  int64_t vocab_size = 0;  // absolute value
  int64_t seq_len = 0;
  bool shared_classifier = true;
};

// Tensor names (all F32, shapes outermost-first, linear weights [out, in]):
//   token_embedding [V, D], rms_final [D], wcls [V, D] (aliases token_embedding when shared),
//   layers.N.{rms_att [D], wq [nH*hd, D], wk [nKV*hd, D], wv [nKV*hd, D], wo [D, nH*hd],
//             rms_ffn [D], w1 [F, D] (gate), w2 [D, F] (down), w3 [F, D] (up)}.
class Checkpoint : public TensorSource {
 public:
  static std::unique_ptr<Checkpoint> open(const std::string& path);

  const Config& config() const { return config_; }
  const std::string& path() const { return file_.path(); }

  const TensorView* find(std::string_view name) const override;
  std::vector<std::string> names() const override;
  std::string file_of(std::string_view) const override { return file_.path(); }
  // Like find() but throws naming the tensor when absent.
  const TensorView& at(std::string_view name) const;

 private:
  explicit Checkpoint(MappedFile file) : file_(std::move(file)) {}
  void parse();

  MappedFile file_;
  Config config_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes.
struct Tokenizer {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  // Reads every entry up to the end of the file; `expected_vocab` > 0 must match the count.
  static Tokenizer load(const std::string& path, int64_t expected_vocab = 0);
};

// Row order that turns a head's adjacent-pair RoPE layout into rotate-half layout: output row
// r of a head takes input row perm[r] (evens first, then odds), as Hugging Face's Llama converter.
std::vector<int64_t> rotate_half_row_order(int64_t head_dim);

}  // namespace kexa::llama2c
