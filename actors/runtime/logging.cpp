#include "actors/runtime/logging.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace gfdit {

std::shared_ptr<spdlog::logger> make_logger(const std::string& name) {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  // spdlog's from_str maps a name it does not know (INFO, verbose) to `off`: a typo would
  // silence every log. Names are matched in lower case; an unknown one keeps `info` and says so.
  static const spdlog::level::level_enum level = [] {
    const char* env = std::getenv("GFDIT_LOG");
    if (!env || !*env) return spdlog::level::info;
    std::string name(env);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "warning") name = "warn";
    const auto l = spdlog::level::from_str(name);
    if (l == spdlog::level::off && name != "off") {
      std::fprintf(stderr, "GFDIT_LOG=%s is not a level (trace, debug, info, warn, error, critical, off): using info\n",
                   env);
      return spdlog::level::info;
    }
    return l;
  }();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_level(level);
  return logger;
}

}  // namespace gfdit
