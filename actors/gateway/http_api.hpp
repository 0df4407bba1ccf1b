#pragma once
// The gateway's HTTP contract, as pure functions (no sockets, no threads): a request body in,
// the graph's GenerateRequests or an error reply out; Rejected / RequestDone / pictures in, an
// HTTP reply out. actors/gateway/README.md documents every field.
//
// POST /v1/images/generations, OpenAI's images API:
//   {"model": "fashion-dit", "prompt": "ankle boot", "n": 2, "response_format": "b64_json", "seed": 7,
//    "num_inference_steps": 25, "guidance_scale": 4.0, "slo_ms": 5000, "stream": false}
// A model a worker serves from a checkpoint (`served`: what the workers' hellos said) draws a
// PNG: `prompt` picks the class (the nearest names are listed when none matches), `size`
// defaults to the one the model draws and the steps and guidance to the model's own. A model
// with seeded weights (benchmarks, the simulator) draws nothing: its reply is the hash of the
// final latent (one image, `size` required).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit::gateway {

struct http_reply {
  int status = 200;
  std::string body;       // JSON
  int retry_after_s = 0;  // > 0: sent as Retry-After
};

// OpenAI's error object: {"error": {"message", "type", "param", "code"}}; type is
// "invalid_request_error" for a 4xx, "server_error" otherwise.
http_reply error_reply(int status, std::string_view code, std::string_view message, std::string_view param = {});

// Bodies nesting deeper than this are refused before they are parsed (the request's own JSON
// is two levels deep).
inline constexpr std::size_t max_json_depth = 32;
// The deepest [ or { nesting of a JSON text, strings skipped; linear, no allocation.
std::size_t nesting_depth(std::string_view body);

inline constexpr std::int32_t max_images = 8;  // `n`
inline constexpr std::size_t max_prompt_bytes = 1000;

// The checkpoints served, by name (from the workers' hellos).
using model_catalog = std::map<std::string, msg::served_model, std::less<>>;

struct generation {
  std::vector<msg::generate_request> requests;  // one per image: seed, seed + 1, ...
  std::string response_format;                  // "b64_json" | "url"; empty: a seeded model's hash reply
  bool stream = false;                          // Server-Sent Events
  std::vector<std::string> classes;             // per image, for the reply
};

// Errors quote a hostile value by its first 64 characters at most.
std::variant<generation, http_reply> parse_generation(std::string_view body, const model_catalog& served = {});

// GET /v1/models: the served checkpoints (and, when some worker has seeded weights, a note).
http_reply models_reply(const model_catalog& served, bool seeded_workers);

// Admission's answer: invalid 400 (naming the field and the rule), overloaded 429 with
// Retry-After, infeasible 422, anything else 503.
http_reply reply_for(const msg::rejected& r);
// A terminal message that is not a success: a policy rejection 503, cancelled 409, failed 500.
http_reply error_for(const msg::request_done& d);
// A seeded model's success: the latency breakdown and the hash of the result. Times are the
// graph's model time.
http_reply reply_for(const msg::request_done& d);

// One picture of a reply's `data`.
struct picture {
  std::string b64_json;  // or
  std::string url;
  std::uint64_t seed = 0;
  std::string class_name;
  double latency_ms = 0.0;
};
// {"created": ..., "data": [{"b64_json" | "url", "seed", "class", "latency_ms"}]}
nlohmann::json images_body(std::int64_t created, const std::vector<picture>& pictures);
// One Server-Sent Event: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& payload);

std::string base64(const std::vector<std::uint8_t>& bytes);

}  // namespace gfdit::gateway
