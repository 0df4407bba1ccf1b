#include "actors/runtime/logging.hpp"

#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace gfdit {

std::shared_ptr<spdlog::logger> make_logger(const std::string& name) {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  static const spdlog::level::level_enum level = [] {
    const char* env = std::getenv("GFDIT_LOG");
    return env ? spdlog::level::from_str(env) : spdlog::level::info;
  }();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_level(level);
  return logger;
}

}  // namespace gfdit
