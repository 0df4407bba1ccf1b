#include "bag/bag_format.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "messages/catalog.hpp"
#include "messages/codec.hpp"

namespace gfdit::bag {

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  out.append(b, 4);
}

void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  out.append(b, 8);
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

header header::current(std::string launch_text) {
  header h;
  h.launch = std::move(launch_text);
  for (const auto& e : catalog::global().list()) h.catalog.push_back({e.name, e.id, e.version, e.schema});
  h.start_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) h.host = host;
  return h;
}

namespace {

void add_to(name_stats& s, std::uint32_t chunk) {
  ++s.count;
  if (s.chunks.empty() || s.chunks.back() != chunk) s.chunks.push_back(chunk);
}

nlohmann::json stats_json(const std::map<std::string, name_stats>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = {{"count", v.count}, {"chunks", v.chunks}};
  return j;
}

// An integer field of a header or index read from the file: refused (as the callers' catch
// reports) unless it is an integer that fits T. nlohmann's get<T>() converts a float by a plain
// cast, undefined behaviour when out of range (fuzz_bag_reader found -7.4e28 as a catalog id).
template <class T>
T whole(const nlohmann::json& v) {
  if (!v.is_number_integer()) throw std::invalid_argument("expected an integer, got " + std::string(v.type_name()));
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) throw std::out_of_range("integer out of range");
    return static_cast<T>(u);
  }
  const auto i = v.get<std::int64_t>();
  if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
      (i > 0 && static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
    throw std::out_of_range("integer out of range");
  return static_cast<T>(i);
}

std::map<std::string, name_stats> stats_from(const nlohmann::json& j) {
  std::map<std::string, name_stats> m;
  for (const auto& [k, v] : j.items()) {
    name_stats s{whole<std::uint64_t>(v.at("count")), {}};
    for (const auto& c : v.at("chunks")) s.chunks.push_back(whole<std::uint32_t>(c));
    m[k] = std::move(s);
  }
  return m;
}

// Bounded parse of msgpack bytes into JSON: the structure check first, so no declared length
// is trusted by the parser.
result<nlohmann::json> parse_msgpack(std::string_view bytes, const char* what) {
  if (auto r = check_msgpack(bytes); !r)
    return make_error(errc::decode_failed, std::string(what) + ": " + r.err().what);
  auto j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded()) return make_error(errc::decode_failed, std::string(what) + ": not msgpack");
  return j;
}

}  // namespace

void index::add(std::uint32_t chunk, route kind, std::uint32_t type_id, std::int64_t wall_ns, const std::string& sender,
                const std::string& destination) {
  if (count == 0 || wall_ns < first_ns) first_ns = wall_ns;
  if (count == 0 || wall_ns > last_ns) last_ns = wall_ns;
  ++count;
  add_to(senders[sender], chunk);
  if (kind == route::topic)
    add_to(topics[destination], chunk);
  else
    add_to(destinations[destination], chunk);
  ++types[type_id];
}

std::vector<std::uint32_t> index::chunks_of_actor(const std::string& actor) const {
  std::vector<std::uint32_t> out;
  for (const auto* m : {&senders, &destinations})
    if (auto it = m->find(actor); it != m->end())
      out.insert(out.end(), it->second.chunks.begin(), it->second.chunks.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> filter::split(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<std::uint32_t> decimal_type_id(std::string_view t) {
  std::uint32_t id = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), id);
  if (ec == std::errc() && p == t.data() + t.size()) return id;
  return std::nullopt;
}

std::uint32_t type_id_named(std::string_view t) {
  if (auto id = decimal_type_id(t)) return *id;
  if (const auto* e = catalog::global().find(t)) return e->id;
  return fnv1a32(t);  // a type this build does not know: its id anyway
}

void filter::resolve() {
  type_ids_.clear();
  for (const auto& t : types) type_ids_.push_back(type_id_named(t));
  resolved_ = true;
}

bool filter::match(const envelope& env) const {
  auto in = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  if (!topics.empty() && !(env.kind == route::topic && in(topics, env.destination))) return false;
  if (!senders.empty() && !in(senders, env.sender)) return false;
  if (!actors.empty() && !in(actors, env.sender) && !(env.kind != route::topic && in(actors, env.destination)))
    return false;
  if (!types.empty()) {
    if (!resolved_) const_cast<filter*>(this)->resolve();
    if (std::find(type_ids_.begin(), type_ids_.end(), env.type_id) == type_ids_.end()) return false;
  }
  return true;
}

nlohmann::json filter::to_json() const {
  return {{"topics", topics}, {"actors", actors}, {"senders", senders}, {"types", types}};
}

std::string encode_header(const header& h) {
  nlohmann::json cat = nlohmann::json::array();
  for (const auto& c : h.catalog)
    cat.push_back({{"name", c.name}, {"id", c.id}, {"version", c.version}, {"schema", c.schema}});
  nlohmann::json j = {{"format", h.version},    {"launch", h.launch}, {"catalog", cat},
                      {"start_ns", h.start_ns}, {"host", h.host},     {"meta", h.meta}};
  auto bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

result<header> decode_header(std::string_view bytes) {
  auto j = parse_msgpack(bytes, "bag header");
  if (!j) return j.err();
  try {
    header h;
    h.version = whole<std::uint32_t>(j->at("format"));
    h.launch = j->value("launch", "");
    h.start_ns = j->contains("start_ns") ? whole<std::int64_t>(j->at("start_ns")) : 0;
    h.host = j->value("host", "");
    h.meta = j->value("meta", nlohmann::json::object());
    for (const auto& c : j->value("catalog", nlohmann::json::array()))
      h.catalog.push_back({c.at("name").get<std::string>(), whole<std::uint32_t>(c.at("id")),
                           whole<std::uint16_t>(c.at("version")), c.value("schema", nlohmann::json{})});
    return h;
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, std::string("bag header: ") + e.what());
  }
}

std::string encode_index(const index& ix) {
  nlohmann::json chunks = nlohmann::json::array();
  for (const auto& c : ix.chunks) chunks.push_back({c.offset, c.bytes, c.count, c.first_index, c.first_ns, c.last_ns});
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [id, n] : ix.types) types[std::to_string(id)] = n;
  nlohmann::json j = {{"chunks", chunks},
                      {"count", ix.count},
                      {"first_ns", ix.first_ns},
                      {"last_ns", ix.last_ns},
                      {"senders", stats_json(ix.senders)},
                      {"destinations", stats_json(ix.destinations)},
                      {"topics", stats_json(ix.topics)},
                      {"types", types}};
  auto bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

result<index> decode_index(std::string_view bytes) {
  auto j = parse_msgpack(bytes, "bag index");
  if (!j) return j.err();
  try {
    index ix;
    for (const auto& c : j->at("chunks"))
      ix.chunks.push_back({whole<std::uint64_t>(c.at(0)), whole<std::uint32_t>(c.at(1)), whole<std::uint32_t>(c.at(2)),
                           whole<std::uint64_t>(c.at(3)), whole<std::int64_t>(c.at(4)), whole<std::int64_t>(c.at(5))});
    ix.count = whole<std::uint64_t>(j->at("count"));
    ix.first_ns = whole<std::int64_t>(j->at("first_ns"));
    ix.last_ns = whole<std::int64_t>(j->at("last_ns"));
    ix.senders = stats_from(j->at("senders"));
    ix.destinations = stats_from(j->at("destinations"));
    ix.topics = stats_from(j->at("topics"));
    for (const auto& [k, v] : j->at("types").items())
      ix.types[static_cast<std::uint32_t>(std::stoul(k))] = whole<std::uint64_t>(v);
    return ix;
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, std::string("bag index: ") + e.what());
  }
}

}  // namespace gfdit::bag
