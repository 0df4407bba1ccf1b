#pragma once
// Every ZeroMQ call is checked through this one macro: a failure becomes an error value naming
// the call and zmq's reason.
#include <string>

#include <zmq.h>

#include "common/result.hpp"

#define GFDIT_ZMQ_CHECK(call)                                                                               \
  do {                                                                                                      \
    if ((call) < 0)                                                                                         \
      return ::gfdit::make_error(::gfdit::errc::io, std::string(#call) + ": " + zmq_strerror(zmq_errno())); \
  } while (0)
