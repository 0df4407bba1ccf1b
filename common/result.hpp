#pragma once
// Errors are values at module boundaries: result<T> holds either a T or an error that says
// what was wrong and where. (std::expected is C++23; this is the small subset we need.)
#include <string>
#include <utility>
#include <variant>

namespace gfdit {

enum class errc {
  invalid_argument,  // the caller passed something malformed
  decode_failed,     // untrusted bytes did not decode
  too_large,         // a size limit was exceeded
  not_found,         // a name or id is unknown
  unreachable,       // a peer cannot be reached (gone, or the high-water mark held)
  timeout,           // no answer in time
  state,             // the operation is not legal in the current state
  io,                // the operating system or a library call failed
  cancelled,
};

const char* to_string(errc code) noexcept;

struct error {
  errc code = errc::invalid_argument;
  std::string what;  // human readable: what was wrong, and where
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  result(error err) : v_(std::in_place_index<1>, std::move(err)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const { return std::get<1>(v_); }

 private:
  std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error err) : err_(std::move(err)), ok_(false) {}
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const error& err() const { return err_; }

 private:
  error err_;
  bool ok_ = true;
};

inline error make_error(errc code, std::string what) { return error{code, std::move(what)}; }

inline const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::decode_failed:
      return "decode_failed";
    case errc::too_large:
      return "too_large";
    case errc::not_found:
      return "not_found";
    case errc::unreachable:
      return "unreachable";
    case errc::timeout:
      return "timeout";
    case errc::state:
      return "state";
    case errc::io:
      return "io";
    case errc::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace gfdit
