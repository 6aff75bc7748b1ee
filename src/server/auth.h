// API keys. The server keeps only SHA-256 hashes of the keys it accepts, and
// compares a request's key by hashing it and comparing the hashes in
// constant time.
//
//   KeyStore keys;
//   keys.add_key("sk-secret");                  // --api-key
//   keys.load_file("keys.txt");                 // --api-key-file
//   keys.check("Bearer sk-secret")              // -> true
//
// Key file: one entry a line; "sha256:<64 hex digits>" is the hash of a key,
// anything else is a key itself; blank lines and lines starting with '#'
// are skipped, surrounding whitespace is ignored.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace hai::server {

using Sha256 = std::array<uint8_t, 32>;

Sha256 sha256(const std::string& data);
std::string to_hex(const Sha256& digest);

class KeyStore {
 public:
  void add_key(const std::string& key);  // throws hai::Error on an empty key
  // Adds every key / hash of the file. Throws hai::Error naming the file
  // and line for an unreadable file, a malformed hash, or a file with no keys.
  void load_file(const std::string& path);

  // No keys: every request is allowed.
  bool enabled() const { return !hashes_.empty(); }
  size_t size() const { return hashes_.size(); }

  // Whether the value of an Authorization header ("Bearer KEY") carries one
  // of the keys. Always true when no keys are configured.
  bool check(const std::string& authorization) const;
  bool check_key(const std::string& key) const;

 private:
  std::vector<Sha256> hashes_;
};

}  // namespace hai::server
