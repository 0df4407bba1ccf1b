// The wire frame: decode_envelope, then what `gfdit topic echo` and `bag echo` do with an
// envelope: render it through the catalog (decoding its payload as the type it names) and print
// that JSON.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "messages/catalog.hpp"
#include "messages/envelope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  auto env = gfdit::decode_envelope(frame);
  if (!env) return 0;
  (void)gfdit::catalog::global().render(*env).dump();
  // What decodes must encode to a frame that decodes the same.
  auto again = gfdit::decode_envelope(gfdit::encode_envelope(*env));
  if (!again || again->payload != env->payload || again->sender != env->sender) __builtin_trap();
  return 0;
}
