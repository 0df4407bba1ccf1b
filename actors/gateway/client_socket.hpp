#pragma once
// Whether the client of a waiting HTTP request is still there. cpp-httplib 0.11 does not tell a
// handler that its connection closed, and a request that waits for the graph must be cancelled
// when its client goes: the handler finds its connection's socket by its two addresses (in
// /proc/self/fd, once) and peeks at it.
#include <string>

namespace gfdit::gateway {

// The connected socket with this local port and this peer; -1 when none is found.
int find_client_socket(int local_port, const std::string& remote_addr, int remote_port);
// True once the peer closed its side (or the connection broke). Data it sent is left unread.
bool peer_closed(int fd);

}  // namespace gfdit::gateway
