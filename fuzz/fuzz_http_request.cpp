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
  // As a seeded model's request, and as a served checkpoint's (prompt -> class, n, defaults).
  static const gfdit::gateway::model_catalog served = [] {
    gfdit::msg::served_model m;
    m.name = "fashion-dit";
    m.width = m.height = 28;
    m.classes = {"t-shirt/top", "trouser", "pullover", "dress", "coat",
                 "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot"};
    m.default_steps = 25;
    m.default_guidance = 4.0;
    return gfdit::gateway::model_catalog{{m.name, m}};
  }();
  static const gfdit::gateway::model_catalog none;
  for (const auto* catalog : {&none, &served}) {
    auto r = gfdit::gateway::parse_generation(body, *catalog);
    if (const auto* reply = std::get_if<gfdit::gateway::http_reply>(&r)) {
      // An error reply is a 4xx whose body is JSON that a client can read.
      if (reply->status < 400 || reply->status >= 500) __builtin_trap();
      if (!nlohmann::json::accept(reply->body)) __builtin_trap();
    } else {
      // Every image is a request the gateway can send: 1-8 of them, one class name each.
      const auto& g = std::get<gfdit::gateway::generation>(r);
      if (g.requests.empty() || g.requests.size() > 8 || g.classes.size() != g.requests.size()) __builtin_trap();
    }
  }
  return 0;
}
