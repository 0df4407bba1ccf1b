// Message decoding: the bounded structure check, the bounded unpack, and decode<T> of the
// serving and membership messages. The first byte picks the message type; the rest is the
// payload. Errors are values: every call may fail, none may crash.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "messages/codec.hpp"
#include "messages/json.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace {

using namespace gfdit;

template <class T>
void decode_as(std::string_view bytes) {
  auto m = decode<T>(bytes);
  if (m) (void)encode(*m);  // what decodes must encode again
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  // Small limits too, so that their edges are reached by small inputs.
  static const decode_limits tight{
      .max_frame = 4096, .max_array = 16, .max_map = 16, .max_str = 64, .max_bin = 64, .max_ext = 16, .max_depth = 4};
  using entry = void (*)(std::string_view);
  static const entry entries[] = {
      [](std::string_view b) { (void)check_msgpack(b); },
      [](std::string_view b) { (void)check_msgpack(b, tight); },
      [](std::string_view b) {
        if (auto h = unpack_bounded(b)) (void)to_json(h->get());
      },
      [](std::string_view b) { (void)unpack_bounded(b, tight); },
      decode_as<msg::generate_request>,
      decode_as<msg::admitted>,
      decode_as<msg::rejected>,
      decode_as<msg::task_assign>,
      decode_as<msg::task_done>,
      decode_as<msg::reshard>,
      decode_as<msg::preempt>,
      decode_as<msg::cancel>,
      decode_as<msg::request_done>,
      decode_as<msg::worker_hello>,
      decode_as<msg::worker_heartbeat>,
      decode_as<msg::form_group>,
      decode_as<msg::dissolve_group>,
      decode_as<msg::group_view>,
      decode_as<msg::worker_down>,
  };
  entries[data[0] % std::size(entries)](bytes);
  return 0;
}
