#pragma once
// msgpack -> JSON, for echo, bag dumps and schemas. Binary becomes {"$bin": "<hex>"}, trimmed
// past 64 bytes so a 1 MiB payload does not flood a terminal.
#include <nlohmann/json.hpp>
#include <msgpack.hpp>

namespace gfdit {

nlohmann::json to_json(const msgpack::object& o);

// The shape of a value: {"field": "uint"|"int"|"float"|"str"|"bin"|"bool"|"nil"|[...]|{...}}.
nlohmann::json schema_of(const msgpack::object& o);

}  // namespace gfdit
