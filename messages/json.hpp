#pragma once
// msgpack -> JSON, for echo, bag dumps and schemas. Binary becomes {"$bin": "<hex>"}, trimmed
// past 64 bytes so a 1 MiB payload does not flood a terminal. Strings come out valid UTF-8
// (each byte of a bad sequence becomes U+FFFD), so the JSON always dumps: msgpack does not
// check the encoding of its strings, and nlohmann's dump() throws on invalid UTF-8.
#include <string>
#include <string_view>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace gfdit {

nlohmann::json to_json(const msgpack::object& o);

// `s` itself when it is valid UTF-8, else with every byte that starts no valid sequence
// replaced by U+FFFD (as nlohmann's error_handler_t::replace does when dumping).
std::string valid_utf8(std::string_view s);

// The shape of a value: {"field": "uint"|"int"|"float"|"str"|"bin"|"bool"|"nil"|[...]|{...}}.
nlohmann::json schema_of(const msgpack::object& o);

}  // namespace gfdit
