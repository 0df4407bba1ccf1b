#pragma once
// The pictures answered with `url`: held until fetched (GET /v1/images/{id}; a fetched picture
// stays another `refetch` for a client that asks twice) or until they are `ttl` old, within
// `max_bytes`. Thread-safe: the actor puts, the HTTP threads get.
//
// Bounded by backpressure, not by dropping: a picture of an accepted request is always stored
// (the store may pass its limit by what was already in flight), and while the store is full the
// gateway refuses new requests (429) instead. Ids are 128 random bits in hex: a url is a
// capability, not a counter another client could guess.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace gfdit::gateway {

struct store_stats {
  std::size_t images = 0;
  std::size_t bytes = 0;
  std::size_t max_bytes = 0;
  std::uint64_t stored = 0;
  std::uint64_t fetched = 0;
  std::uint64_t expired = 0;
};

class result_store {
 public:
  using clock = std::chrono::steady_clock;

  result_store(std::size_t max_bytes, std::chrono::milliseconds ttl) : max_bytes_(max_bytes), ttl_(ttl) {}

  // Stores the bytes and returns their id.
  std::string put(std::vector<std::uint8_t> bytes, clock::time_point now = clock::now());
  static constexpr std::chrono::seconds refetch{60};

  // The bytes (which now expire within `refetch`); nothing when the id is unknown or expired.
  std::optional<std::vector<std::uint8_t>> get(const std::string& id, clock::time_point now = clock::now());
  // No room for more: new requests wait (429) until pictures are fetched or expire.
  bool full(clock::time_point now = clock::now());
  store_stats stats(clock::time_point now = clock::now());

 private:
  struct entry {
    std::vector<std::uint8_t> bytes;
    clock::time_point expires;
  };
  void expire(clock::time_point now);  // mu_ held

  std::mutex mu_;
  std::size_t max_bytes_;
  std::chrono::milliseconds ttl_;
  std::map<std::string, entry> items_;
  store_stats stats_;
};

}  // namespace gfdit::gateway
