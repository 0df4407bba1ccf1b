#pragma once
namespace gfdit {
class catalog;
// Registers every message family shipped with gfdit. A new family adds one line in builtin.cpp.
void register_builtin_messages(catalog& c);
}  // namespace gfdit
