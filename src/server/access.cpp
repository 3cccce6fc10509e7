#include "server/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>

#include "util/error.h"

namespace kexa::server {

AccessControl::AccessControl(const std::string& api_key, const std::string& metrics_key,
                             std::set<std::string> public_paths)
    : public_(std::move(public_paths)) {
  if (!api_key.empty()) api_ = digest(api_key);
  if (!metrics_key.empty()) metrics_ = digest(metrics_key);
}

AccessControl::Digest AccessControl::digest(std::string_view key) {
  Digest d{};
  unsigned int n = 0;
  if (EVP_Digest(key.data(), key.size(), d.data(), &n, EVP_sha256(), nullptr) != 1 || n != d.size())
    fail("SHA-256 failed");
  return d;
}

AccessControl::Verdict AccessControl::check(const std::string& path, std::string_view authorization) const {
  const std::optional<Digest>& expected = path == "/metrics" && metrics_ ? metrics_ : api_;
  if (!expected || public_.contains(path)) return Verdict::Allowed;
  // RFC 9110: the scheme is case-insensitive.
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() <= scheme.size()) return Verdict::Missing;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(authorization[i]))) != scheme[i])
      return Verdict::Missing;
  const Digest given = digest(authorization.substr(scheme.size()));
  return CRYPTO_memcmp(given.data(), expected->data(), given.size()) == 0 ? Verdict::Allowed : Verdict::Wrong;
}

}  // namespace kexa::server
