#pragma once
// CurveZMQ key pairs and the key folder a graph is keyed with. A pair lives in two files of one
// folder: NAME.key (the secret, Z85, mode 0600) and NAME.pub (the public key, Z85). A folder's
// *.pub files are the keys a graph accepts; a key's name is the node (or tool) that holds it.
#include <filesystem>
#include <map>
#include <string>

#include "common/result.hpp"

namespace gfdit {

struct curve_key_pair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Every accepted key: name <-> public key (both unique in a folder).
struct key_ring {
  std::map<std::string, std::string> by_name;    // name -> public key (Z85)
  std::map<std::string, std::string> by_public;  // public key (Z85) -> name
  bool empty() const { return by_name.empty(); }
  // The public key named `name`; empty when there is none.
  std::string public_of(const std::string& name) const;
};

// Whether this libzmq was built with CURVE (libsodium).
bool curve_available();

// A fresh pair (zmq_curve_keypair).
result<curve_key_pair> make_curve_key_pair();

// Writes DIR/NAME.key (0600, created exclusively: an existing pair is never overwritten) and
// DIR/NAME.pub; creates DIR (0700) when missing.
result<void> write_key_pair(const std::filesystem::path& dir, const std::string& name, const curve_key_pair& pair);

// Reads a secret key file and derives its public key. Refuses a file other users may read (as
// ssh does), one that is not a Z85 key, and a folder where its .pub disagrees.
result<curve_key_pair> read_key_pair(const std::filesystem::path& secret_file);

// Every DIR/*.pub; the name is the file's stem. Errors name the file.
result<key_ring> read_key_ring(const std::filesystem::path& dir);

// A key name is a node name: letters, digits, '_', '-', '.'.
bool valid_key_name(const std::string& name);

}  // namespace gfdit
