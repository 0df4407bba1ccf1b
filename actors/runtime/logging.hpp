#pragma once
// Loggers tagged with an actor's (or node's) name, all writing to one stderr sink. The level
// comes from GFDIT_LOG (trace, debug, info, warn, error, off; default info).
#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace gfdit {

std::shared_ptr<spdlog::logger> make_logger(const std::string& name);

}  // namespace gfdit
