#include "actors/gateway/http_api.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "kernels/dit/model_card.hpp"

namespace gfdit::gateway {
namespace {

using nlohmann::json;

const std::set<std::string, std::less<>> ignored = {"quality", "style", "user", "moderation", "background"};
const std::set<std::string, std::less<>> known = {"model",
                                                  "prompt",
                                                  "n",
                                                  "size",
                                                  "width",
                                                  "height",
                                                  "frames",
                                                  "response_format",
                                                  "seed",
                                                  "num_inference_steps",
                                                  "steps",
                                                  "guidance_scale",
                                                  "guidance",
                                                  "slo_ms",
                                                  "slo_multiple",
                                                  "priority",
                                                  "class",
                                                  "stream"};

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
                  : std::is_same_v<T, bool>      ? it->is_boolean()
                  : std::is_floating_point_v<T>  ? it->is_number()
                  : std::is_unsigned_v<T>        ? it->is_number_unsigned()
                                                 : it->is_number_integer();
  if (!ok) {
    const char* want = std::is_same_v<T, std::string> ? "a string"
                       : std::is_same_v<T, bool>      ? "true or false"
                       : std::is_floating_point_v<T>  ? "a number"
                       : std::is_unsigned_v<T>        ? "a non-negative integer"
                                                      : "an integer";
    err =
        error_reply(400, "invalid", std::string("'") + key + "' must be " + want + ", got " + clipped(it->dump()), key);
    return false;
  }
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T> && !std::is_same_v<T, bool>) {
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
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
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

http_reply error_reply(int status, std::string_view code, std::string_view message, std::string_view param) {
  json e = {{"message", message},
            {"type", status < 500 ? "invalid_request_error" : "server_error"},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code}};
  return {status, json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace), 0};
}

std::variant<generation, http_reply> parse_generation(std::string_view body, const model_catalog& served) {
  // Counted before parsing: a parsed tree 70,000 deep overflowed the stack when it was freed.
  if (const auto depth = nesting_depth(body); depth > max_json_depth)
    return error_reply(
        400, "invalid",
        "the body nests " + std::to_string(depth) + " levels deep (at most " + std::to_string(max_json_depth) + ")");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return error_reply(400, "invalid", "the body is not valid JSON");
  if (!j.is_object()) return error_reply(400, "invalid", "the body must be a JSON object");
  for (const auto& [key, value] : j.items())
    if (!known.count(key) && !ignored.count(key))
      return error_reply(400, "invalid", "unknown field '" + clipped(key) + "'", clipped(key));
  for (const auto& [a, b] : {std::pair{"steps", "num_inference_steps"}, std::pair{"guidance", "guidance_scale"}})
    if (j.contains(a) && j.contains(b))
      return error_reply(400, "invalid", std::string("give '") + b + "' or its alias '" + a + "', not both", a);
  msg::generate_request r;
  http_reply err;
  std::string size, prompt, format;
  std::int32_t n = 1;
  bool stream = false;
  if (!read(j, "model", r.model, err) || !read(j, "prompt", prompt, err) || !read(j, "size", size, err) ||
      !read(j, "width", r.width, err) || !read(j, "height", r.height, err) || !read(j, "frames", r.frames, err) ||
      !read(j, "steps", r.steps, err) || !read(j, "num_inference_steps", r.steps, err) ||
      !read(j, "guidance", r.guidance, err) || !read(j, "guidance_scale", r.guidance, err) ||
      !read(j, "seed", r.seed, err) || !read(j, "slo_ms", r.slo_ms, err) ||
      !read(j, "slo_multiple", r.slo_multiple, err) || !read(j, "priority", r.priority, err) ||
      !read(j, "class", r.class_name, err) || !read(j, "n", n, err) || !read(j, "response_format", format, err) ||
      !read(j, "stream", stream, err))
    return err;
  if (r.model.empty()) return error_reply(400, "invalid", "'model' is required", "model");
  if (n < 1 || n > max_images)
    return error_reply(400, "invalid",
                       "'n' must be in [1, " + std::to_string(max_images) + "], got " + std::to_string(n), "n");
  if (!format.empty() && format != "b64_json" && format != "url")
    return error_reply(400, "invalid", "'response_format' must be b64_json or url, got '" + clipped(format) + "'",
                       "response_format");
  if (!size.empty()) {
    if (j.contains("width") || j.contains("height"))
      return error_reply(400, "invalid", "give 'size' or 'width' and 'height', not both", "size");
    int w = 0, h = 0, used = 0;
    if (std::sscanf(size.c_str(), "%dx%d%n", &w, &h, &used) != 2 || used != static_cast<int>(size.size()))
      return error_reply(400, "invalid", "'size' must look like 1024x768, got '" + clipped(size) + "'", "size");
    r.width = w;
    r.height = h;
  } else if (j.contains("width") != j.contains("height")) {
    return error_reply(400, "invalid", "give both 'width' and 'height' (or 'size')", "size");
  }

  generation g;
  g.stream = stream;
  auto m = served.find(r.model);
  if (m != served.end()) {
    const msg::served_model& info = m->second;
    if (r.width == 0 && r.height == 0) {
      r.width = info.width;
      r.height = info.height;
    } else if (r.width != info.width || r.height != info.height) {
      return error_reply(400, "invalid",
                         "'" + info.name + "' draws " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                             " only, not " + clipped(std::to_string(r.width) + "x" + std::to_string(r.height)),
                         "size");
    }
    if (!j.contains("steps") && !j.contains("num_inference_steps")) r.steps = info.default_steps;
    if (!j.contains("guidance") && !j.contains("guidance_scale")) r.guidance = info.default_guidance;
    if (!info.classes.empty()) {
      if (prompt.size() > max_prompt_bytes)
        return error_reply(400, "invalid",
                           "'prompt' is " + std::to_string(prompt.size()) + " bytes (at most " +
                               std::to_string(max_prompt_bytes) + ")",
                           "prompt");
      if (prompt.empty())
        return error_reply(400, "invalid", "'prompt' is required: name one of the classes of '" + info.name + "'",
                           "prompt");
      dit::model_card card;
      card.class_names = info.classes;
      card.config.num_classes = static_cast<int>(info.classes.size());
      auto label = dit::match_class(card, prompt);
      if (!label) return error_reply(400, "invalid", label.err().what, "prompt");
      r.label = *label;
    }
    g.response_format = format.empty() ? "url" : format;
  } else {
    // Seeded weights: no picture, only the hash of the final latent, one image at a time.
    if (r.width == 0 && r.height == 0)
      return error_reply(400, "invalid", "'size' (or 'width' and 'height') is required", "size");
    if (!j.contains("steps") && !j.contains("num_inference_steps")) r.steps = 30;
    if (!format.empty())
      return error_reply(400, "invalid",
                         "'" + clipped(r.model) +
                             "' is not a checkpoint a worker serves: it draws no "
                             "picture, so there is no response_format (its reply is a hash)",
                         "response_format");
    if (n != 1) return error_reply(400, "invalid", "'n' must be 1 for a model with seeded weights", "n");
    if (stream) return error_reply(400, "invalid", "'stream' needs a checkpoint a worker serves", "stream");
  }
  for (std::int32_t i = 0; i < n; ++i) {
    msg::generate_request one = r;
    one.seed = r.seed + static_cast<std::uint64_t>(i);
    one.progress = stream;
    g.requests.push_back(std::move(one));
    g.classes.push_back(m != served.end() && r.label >= 0 ? m->second.classes[static_cast<std::size_t>(r.label)]
                                                          : r.class_name);
  }
  return g;
}

http_reply models_reply(const model_catalog& served, bool seeded_workers) {
  json data = json::array();
  for (const auto& [name, m] : served)
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "gfdit"},
                    {"size", std::to_string(m.width) + "x" + std::to_string(m.height)},
                    {"classes", m.classes},
                    {"default_steps", m.default_steps},
                    {"default_guidance", m.default_guidance}});
  json out = {{"object", "list"}, {"data", data}};
  if (seeded_workers) out["seeded_weights"] = "some workers run every profiled model with seeded weights (no pictures)";
  return {200, out.dump(-1, ' ', false, json::error_handler_t::replace), 0};
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

http_reply error_for(const msg::request_done& d) {
  if (d.status == "rejected")
    return error_reply(503, "policy", d.error.empty() ? "rejected by the scheduler's policy" : d.error);
  if (d.status == "cancelled") return error_reply(409, "cancelled", d.error.empty() ? "cancelled" : d.error);
  return error_reply(500, d.status.empty() ? "failed" : d.status, d.error);
}

http_reply reply_for(const msg::request_done& d) {
  if (d.status != "done") return error_for(d);
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(d.result_hash));
  const auto created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
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

json images_body(std::int64_t created, const std::vector<picture>& pictures) {
  json data = json::array();
  for (const auto& p : pictures) {
    json item = p.url.empty() ? json{{"b64_json", p.b64_json}} : json{{"url", p.url}};
    item["seed"] = p.seed;
    item["class"] = p.class_name;
    item["latency_ms"] = p.latency_ms;
    data.push_back(std::move(item));
  }
  return {{"created", created}, {"data", std::move(data)}};
}

std::string sse_event(const json& payload) {
  return "data: " + payload.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string base64(const std::vector<std::uint8_t>& bytes) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += digits[(v >> s) & 63];
  }
  if (const std::size_t left = bytes.size() - i; left > 0) {
    const std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (left == 2 ? std::uint32_t{bytes[i + 1]} << 8 : 0u);
    out += digits[(v >> 18) & 63];
    out += digits[(v >> 12) & 63];
    out += left == 2 ? digits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace gfdit::gateway
