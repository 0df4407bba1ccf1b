// The gateway's POST /v1/images/generations body: nesting_depth (the guard run before parsing)
// and parse_generation (JSON, known and ignored fields, types and ranges, size strings), which
// must turn any body into a request or an error reply with a JSON body.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "actors/gateway/http_api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)gfdit::gateway::nesting_depth(body);
  auto r = gfdit::gateway::parse_generation(body);
  if (const auto* reply = std::get_if<gfdit::gateway::http_reply>(&r)) {
    // An error reply is a 4xx whose body is JSON that a client can read.
    if (reply->status < 400 || reply->status >= 500) __builtin_trap();
    if (!nlohmann::json::accept(reply->body)) __builtin_trap();
  }
  return 0;
}
