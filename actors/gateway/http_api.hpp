#pragma once
// The gateway's HTTP contract, as pure functions (no sockets, no threads): a request body in,
// a GenerateRequest or an error reply out; Rejected / RequestDone in, an HTTP reply out.
//
// POST /v1/images/generations, OpenAI-style JSON:
//   {"model": "image-dit-20b-standin", "size": "1024x1024", "steps": 20, "guidance": 4.0, "seed": 7,
//    "frames": 1, "slo_ms": 5000, "slo_multiple": 2.0, "priority": 0, "class": "1024", "n": 1}
// `model` is required; `size` or `width` + `height`; the rest is optional (steps 30, frames 1,
// guidance 0, seed 0, best effort). OpenAI's `response_format`, `quality`, `style` and `user`
// are accepted and ignored; any other field is an error that names it, so a typo never
// silently changes a request.
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include "messages/serving.hpp"

namespace gfdit::gateway {

struct http_reply {
  int status = 200;
  std::string body;            // JSON
  int retry_after_s = 0;       // > 0: sent as Retry-After
};

// {"error": {"code": ..., "message": ..., "field": ...}} with the given status.
http_reply error_reply(int status, std::string_view code, std::string_view message, std::string_view field = {});

// Bodies nesting deeper than this are refused before they are parsed (the request's own JSON
// is two levels deep).
inline constexpr std::size_t max_json_depth = 32;
// The deepest [ or { nesting of a JSON text, strings skipped; linear, no allocation.
std::size_t nesting_depth(std::string_view body);

// Errors quote a hostile value by its first 64 characters at most.
std::variant<msg::generate_request, http_reply> parse_generation(std::string_view body);

// Admission's answer: invalid 400 (naming the field and the rule), overloaded 429 with
// Retry-After, infeasible 422, anything else 503.
http_reply reply_for(const msg::rejected& r);
// The terminal message: done 200 with the latency breakdown and the result reference; a policy
// rejection 503, cancelled 409, failed 500. Times are the graph's model time.
http_reply reply_for(const msg::request_done& d);

}  // namespace gfdit::gateway
