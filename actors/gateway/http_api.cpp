#include "actors/gateway/http_api.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace gfdit::gateway {
namespace {

using nlohmann::json;

const std::set<std::string, std::less<>> ignored = {"response_format", "quality", "style", "user"};
const std::set<std::string, std::less<>> known = {"model", "size", "width", "height", "frames", "steps",
                                                  "guidance", "seed", "slo_ms", "slo_multiple",
                                                  "priority", "class", "n"};

// A hostile value is quoted by its first characters only: a 50 MB array must not come back as a
// 50 MB error.
// The cut falls between two UTF-8 characters, never inside one: a cut character made the error
// reply's JSON dump throw (found by fuzz/fuzz_http_request).
std::string clipped(std::string_view text) {
  constexpr std::size_t keep = 64;
  if (text.size() <= keep) return std::string(text);
  std::size_t cut = keep;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // a continuation byte
  return std::string(text.substr(0, cut)) + "... (" + std::to_string(text.size()) + " bytes)";
}

// Reads j[key] into out when present; false (and `err` set) when it has the wrong type.
template <class T>
bool read(const json& j, const char* key, T& out, http_reply& err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  const bool ok = std::is_same_v<T, std::string> ? it->is_string()
                  : std::is_floating_point_v<T> ? it->is_number()
                  : std::is_unsigned_v<T>       ? it->is_number_unsigned()
                                                : it->is_number_integer();
  if (!ok) {
    const char* want = std::is_same_v<T, std::string> ? "a string"
                       : std::is_floating_point_v<T> ? "a number"
                       : std::is_unsigned_v<T>       ? "a non-negative integer"
                                                     : "an integer";
    err = error_reply(400, "invalid", std::string("'") + key + "' must be " + want + ", got " + clipped(it->dump()), key);
    return false;
  }
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    const auto v = it->get<std::int64_t>();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      err = error_reply(400, "invalid", std::string("'") + key + "' is out of range: " + clipped(it->dump()), key);
      return false;
    }
  }
  out = it->get<T>();
  return true;
}

double ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }


}  // namespace

std::size_t nesting_depth(std::string_view body) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

http_reply error_reply(int status, std::string_view code, std::string_view message, std::string_view field) {
  json e = {{"code", code}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  return {status, json{{"error", e}}.dump(), 0};
}

std::variant<msg::generate_request, http_reply> parse_generation(std::string_view body) {
  // Counted before parsing: a parsed tree 70,000 deep overflowed the stack when it was freed.
  if (const auto depth = nesting_depth(body); depth > max_json_depth)
    return error_reply(400, "invalid", "the body nests " + std::to_string(depth) + " levels deep (at most " +
                                           std::to_string(max_json_depth) + ")");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return error_reply(400, "invalid", "the body is not valid JSON");
  if (!j.is_object()) return error_reply(400, "invalid", "the body must be a JSON object");
  for (const auto& [key, value] : j.items())
    if (!known.count(key) && !ignored.count(key))
      return error_reply(400, "invalid", "unknown field '" + clipped(key) + "'", clipped(key));
  msg::generate_request r;
  r.steps = 30;
  http_reply err;
  std::string size;
  std::int32_t n = 1;
  if (!read(j, "model", r.model, err) || !read(j, "size", size, err) || !read(j, "width", r.width, err) ||
      !read(j, "height", r.height, err) || !read(j, "frames", r.frames, err) || !read(j, "steps", r.steps, err) ||
      !read(j, "guidance", r.guidance, err) || !read(j, "seed", r.seed, err) || !read(j, "slo_ms", r.slo_ms, err) ||
      !read(j, "slo_multiple", r.slo_multiple, err) || !read(j, "priority", r.priority, err) ||
      !read(j, "class", r.class_name, err) || !read(j, "n", n, err))
    return err;
  if (r.model.empty()) return error_reply(400, "invalid", "'model' is required", "model");
  if (n != 1) return error_reply(400, "invalid", "'n' must be 1 (one image per request)", "n");
  if (!size.empty()) {
    if (j.contains("width") || j.contains("height"))
      return error_reply(400, "invalid", "give 'size' or 'width' and 'height', not both", "size");
    int w = 0, h = 0, used = 0;
    if (std::sscanf(size.c_str(), "%dx%d%n", &w, &h, &used) != 2 || used != static_cast<int>(size.size()))
      return error_reply(400, "invalid", "'size' must look like 1024x768, got '" + clipped(size) + "'", "size");
    r.width = w;
    r.height = h;
  } else if (!j.contains("width") || !j.contains("height")) {
    return error_reply(400, "invalid", "'size' (or 'width' and 'height') is required", "size");
  }
  return r;
}

http_reply reply_for(const msg::rejected& r) {
  const std::string text = r.field.empty() ? r.rule : "'" + r.field + "': " + r.rule;
  if (r.code == "invalid") return error_reply(400, r.code, text, r.field);
  if (r.code == "infeasible") return error_reply(422, r.code, text, r.field);
  if (r.code == "overloaded") {
    auto rep = error_reply(429, r.code, text, r.field);
    rep.retry_after_s = std::max(1, static_cast<int>(std::ceil(r.retry_after_ms / 1000.0)));
    return rep;
  }
  return error_reply(503, r.code.empty() ? "rejected" : r.code, text, r.field);
}

http_reply reply_for(const msg::request_done& d) {
  if (d.status == "rejected") return error_reply(503, "policy", d.error.empty() ? "rejected by the scheduler's policy" : d.error);
  if (d.status == "cancelled") return error_reply(409, "cancelled", d.error.empty() ? "cancelled" : d.error);
  if (d.status != "done") return error_reply(500, d.status, d.error);
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(d.result_hash));
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  json out = {{"id", d.request_id},
              {"created", created},
              {"status", d.status},
              {"class", d.class_name},
              {"slo_met", d.slo_met},
              {"latency_ms", ms(d.latency_us)},
              {"queue_ms", ms(d.queue_us)},
              {"run_ms", ms(d.run_us)},
              {"reshard_ms", ms(d.reshard_us)},
              {"gpu_ms", ms(d.gpu_us)},
              {"regroupings", d.regroupings},
              {"preemptions", d.preemptions},
              {"retries", d.retries},
              {"data", json::array({json{{"url", "gfdit://" + d.result_ref}, {"result_hash", hash}}})}};
  return {200, out.dump(), 0};
}

}  // namespace gfdit::gateway
