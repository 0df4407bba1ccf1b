#pragma once
// The bag file format (docs/bag-format.md): a header, chunks of length-prefixed envelopes each
// with a CRC32C, and an index footer. All integers little-endian.
//
//   "GFDITBAG" u32 version u32 header_len u32 header_crc  header (msgpack map)
//   chunk*:    "GFCK" u32 payload_len u32 count u32 crc   payload = (u32 len, envelope)*count
//   "GFIX" u32 index_len u32 index_crc  index (msgpack map)
//   u64 index_offset "GFDITEND"                            (the 16-byte trailer)
//
// A chunk is written whole or not at all as far as a reader cares: one that is cut off or whose
// CRC fails ends the readable part, so a bag cut off mid-write reads up to its last complete
// chunk; repair() rebuilds the index from every valid chunk, resynchronising past damaged ones.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "messages/envelope.hpp"

namespace gfdit::bag {

inline constexpr std::uint32_t format_version = 1;
inline constexpr std::string_view file_magic = "GFDITBAG";
inline constexpr std::string_view chunk_magic = "GFCK";
inline constexpr std::string_view index_magic = "GFIX";
inline constexpr std::string_view end_magic = "GFDITEND";
inline constexpr std::size_t file_prefix_bytes = 20;  // magic, version, header_len, header_crc
inline constexpr std::size_t chunk_head_bytes = 16;
inline constexpr std::size_t trailer_bytes = 16;
// Bounds a reader enforces whatever a file claims.
inline constexpr std::uint32_t max_header_bytes = 64u << 20;
inline constexpr std::uint32_t max_chunk_bytes = 512u << 20;
inline constexpr std::uint32_t max_index_bytes = 512u << 20;

struct catalog_row {
  std::string name;
  std::uint32_t id = 0;
  std::uint16_t version = 0;
  nlohmann::json schema;
};

struct header {
  std::uint32_t version = format_version;
  std::string launch;                // the launch file's text, verbatim ("" when none)
  std::vector<catalog_row> catalog;  // every message type known to the writer
  std::int64_t start_ns = 0;         // wall clock when recording began
  std::string host;
  nlohmann::json meta = nlohmann::json::object();  // free-form: recorder name, filter, node
  // The process-wide catalog, this host's name and the time now.
  static header current(std::string launch_text = {});
};

// What the index keeps per chunk.
struct chunk_info {
  std::uint64_t offset = 0;                // of the chunk's magic
  std::uint32_t bytes = 0;                 // payload bytes
  std::uint32_t count = 0;                 // records
  std::uint64_t first_index = 0;           // bag-wide index of its first message
  std::int64_t first_ns = 0, last_ns = 0;  // min / max wall stamp in it
};

struct name_stats {
  std::uint64_t count = 0;
  std::vector<std::uint32_t> chunks;  // chunk numbers (ascending) holding a message
};

struct index {
  std::vector<chunk_info> chunks;
  std::uint64_t count = 0;
  std::int64_t first_ns = 0, last_ns = 0;          // time range (0, 0 when empty)
  std::map<std::string, name_stats> senders;       // actor -> messages it sent
  std::map<std::string, name_stats> destinations;  // actor (direct, reply, failure) -> received
  std::map<std::string, name_stats> topics;        // topic -> messages published
  std::map<std::uint32_t, std::uint64_t> types;    // type id -> count
  bool recovered = false;                          // rebuilt by scanning (no valid footer); not stored

  // Account one message of chunk `chunk`.
  void add(std::uint32_t chunk, const envelope& env) {
    add(chunk, env.kind, env.type_id, env.time.wall_ns, env.sender, env.destination);
  }
  void add(std::uint32_t chunk, route kind, std::uint32_t type_id, std::int64_t wall_ns, const std::string& sender,
           const std::string& destination);
  // Chunks that may hold a message of `actor` (as sender or directed destination) or `topic`.
  std::vector<std::uint32_t> chunks_of_actor(const std::string& actor) const;
};

// A type as a user names it (a filter's `types`, `--type`): a decimal id, else a name of this
// build's catalog, else the id a type of that name has (fnv1a32), known here or not.
std::optional<std::uint32_t> decimal_type_id(std::string_view t);
std::uint32_t type_id_named(std::string_view t);

// Which messages a writer keeps or a reader returns. Within a list any entry matches; across
// lists all non-empty ones must match. types: catalog names or decimal ids.
struct filter {
  std::vector<std::string> topics;   // topic messages on these topics
  std::vector<std::string> actors;   // sent by, or directed to, these actors
  std::vector<std::string> senders;  // sent by these actors
  std::vector<std::string> types;
  bool empty() const { return topics.empty() && actors.empty() && senders.empty() && types.empty(); }
  bool match(const envelope& env) const;
  // "a,b,c" -> {"a","b","c"}
  static std::vector<std::string> split(std::string_view list);
  nlohmann::json to_json() const;
  // Type names resolved to ids once, so match() compares numbers.
  void resolve();

 private:
  std::vector<std::uint32_t> type_ids_;
  bool resolved_ = false;
};

// Serialisation of the header and index (msgpack maps through nlohmann::json, read back only
// after the bounded structure check).
std::string encode_header(const header& h);
result<header> decode_header(std::string_view bytes);
std::string encode_index(const index& ix);
result<index> decode_index(std::string_view bytes);

// Little-endian helpers.
void put_u32(std::string& out, std::uint32_t v);
void put_u64(std::string& out, std::uint64_t v);
std::uint32_t get_u32(const char* p);
std::uint64_t get_u64(const char* p);

}  // namespace gfdit::bag
