// The widths of a transformer stack: what the text decoder's ModelConfig, the vision tower's
// VisionConfig and a llama2.c checkpoint's header each declare about theirs.
#pragma once

#include <cstdint>

namespace kexa {

struct TransformerShape {
  int64_t hidden_size = 0;        // width of the residual stream
  int64_t intermediate_size = 0;  // width of the MLP's hidden layer
  int64_t n_layers = 0;
  int64_t n_heads = 0;            // query heads
  int64_t n_kv_heads = 0;         // key/value heads; fewer than n_heads: grouped-query attention
  int64_t head_dim = 0;
};

}  // namespace kexa
