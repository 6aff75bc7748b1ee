#include "server/auth.h"

#include <fstream>

#include <openssl/evp.h>

#include "engine/common/error.h"

namespace hai::server {

Sha256 sha256(const std::string& data) {
  Sha256 out{};
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) || len != out.size())
    throw Error("sha256: OpenSSL failed to compute a digest");
  return out;
}

std::string to_hex(const Sha256& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

void KeyStore::add_key(const std::string& key) {
  if (key.empty()) throw Error("--api-key: the key is empty");
  hashes_.push_back(sha256(key));
}

void KeyStore::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the API key file");
  std::string line;
  int lineno = 0;
  size_t before = hashes_.size();
  while (std::getline(in, line)) {
    ++lineno;
    size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    size_t e = line.find_last_not_of(" \t\r");
    std::string entry = line.substr(b, e - b + 1);
    const std::string prefix = "sha256:";
    if (entry.rfind(prefix, 0) != 0) {
      hashes_.push_back(sha256(entry));
      continue;
    }
    std::string hex = entry.substr(prefix.size());
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      throw Error(path + ":" + std::to_string(lineno) + ": a sha256: entry needs 64 hex digits");
    Sha256 h{};
    for (size_t i = 0; i < 32; ++i) h[i] = uint8_t(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    hashes_.push_back(h);
  }
  if (in.bad()) throw Error(path + ": read error");
  if (hashes_.size() == before) throw Error(path + ": the API key file holds no keys");
}

bool KeyStore::check_key(const std::string& key) const {
  if (hashes_.empty()) return true;
  Sha256 h = sha256(key);
  bool ok = false;
  for (const Sha256& want : hashes_) {
    uint8_t diff = 0;
    for (size_t i = 0; i < h.size(); ++i) diff |= uint8_t(h[i] ^ want[i]);
    ok |= diff == 0;  // look at every stored hash: the time does not tell which one matched
  }
  return ok;
}

bool KeyStore::check(const std::string& authorization) const {
  if (hashes_.empty()) return true;
  const std::string bearer = "Bearer ";
  if (authorization.size() <= bearer.size()) return false;
  bool is_bearer = true;
  for (size_t i = 0; i < bearer.size(); ++i)
    is_bearer = is_bearer && std::tolower(static_cast<unsigned char>(authorization[i])) ==
                                 std::tolower(static_cast<unsigned char>(bearer[i]));
  if (!is_bearer) return false;
  return check_key(authorization.substr(bearer.size()));
}

}  // namespace hai::server
