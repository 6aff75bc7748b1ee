// Noticing a client that went away while its non-streaming answer is being
// computed. cpp-httplib 0.11 (Debian 12) gives a handler no handle on its
// connection, so the socket is found by its addresses: the one open socket
// of this process whose local port and peer address and port are those of
// the request. While the handler runs the connection is open, so the
// descriptor cannot have been reused for another one.
#pragma once

#include <string>

namespace hai::server {

// The descriptor of the connected TCP socket with this peer address/port and
// local port, or -1 when none is found (then disconnects go unnoticed).
int find_connection(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer has closed the connection (an orderly shutdown or a
// reset). Data the client sent meanwhile (a pipelined request) is left in
// place and counts as alive.
bool peer_closed(int fd);

}  // namespace hai::server
