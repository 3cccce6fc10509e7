// Pieces of ModelConfig's readers (config.cpp: config.json; config_gguf.cpp: GGUF metadata) that
// both sources share, so a rule is written once.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace kexa::config_detail {

void require_positive(std::string_view origin, std::string_view what, int64_t v);
// Checks the finished config (dimensions, heads, eos ids, plan size); `origin` prefixes errors.
void validate(const ModelConfig& c, std::string_view origin);

// A repeating pattern of period n > 0: layer i slides unless (i + 1) is a multiple of n.
std::vector<bool> periodic_sliding(int64_t n_layers, int64_t n);
// `window` on the sliding layers, 0 on the others.
std::vector<int64_t> windows_of(const std::vector<bool>& sliding, int64_t window);

// The one layer-plan builder: c.layers from per-layer windows (empty = all global) and MoE flags
// (empty = all dense), both n_layers long otherwise; RoPE on every layer of a model without
// sliding layers, else only on the sliding ones (global layers are NoPE); the MTP block gets
// `mtp_window` and the same RoPE rule.
void plan_layers(ModelConfig& c, const std::vector<int64_t>& windows, const std::vector<bool>& moe,
                 int64_t mtp_window);

}  // namespace kexa::config_detail
