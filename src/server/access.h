// Who may call which route of `kexa serve`. With an API key set, every route but /health and the
// web UI's static files needs "Authorization: Bearer KEY"; /metrics needs the metrics key instead
// when one is set (a scraper then holds no key to the API). Keys are compared in constant time:
// both sides are hashed (SHA-256) and the digests compared with CRYPTO_memcmp, so neither the
// position of the first wrong byte nor the key's length shows in the answer's timing.
#pragma once

#include <array>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace kexa::server {

class AccessControl {
 public:
  // Empty keys: that door is open (no API key: every route but /metrics, which then follows the
  // metrics key alone). `public_paths`: answered without a key (the UI's files and /health).
  AccessControl(const std::string& api_key, const std::string& metrics_key, std::set<std::string> public_paths);

  enum class Verdict { Allowed, Missing, Wrong };
  // `authorization`: the request's Authorization header ("" when absent).
  Verdict check(const std::string& path, std::string_view authorization) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest digest(std::string_view key);
  std::optional<Digest> api_;
  std::optional<Digest> metrics_;
  std::set<std::string> public_;
};

}  // namespace kexa::server
