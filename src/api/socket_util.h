// api/socket_util.h: finding httplib's own sockets (httplib 0.11 hides them)
// among the process's descriptors, by their ports. Linux (/proc/self/fd).
#pragma once

namespace mw::api {

// The descriptor of a connected TCP socket with these local and remote
// ports, or -1.
int FindConnectedSocket(int local_port, int remote_port);
// Raises the accept backlog of the listening TCP socket on `port` to the
// system maximum (httplib 0.11 listens with a backlog of 5, so a burst of
// clients overflows it and some connections are dropped). False if no such
// socket was found.
bool RaiseListenBacklog(int port);

}  // namespace mw::api
