/* daemon.h - the client and server ends of `brisk daemon` (daemon.c). */
#ifndef BRISK_CLI_DAEMON_H
#define BRISK_CLI_DAEMON_H

#include <lua.h>

/* Hand the command to the daemon listening on `host` (a socket path, or
 * unix://PATH): its exit code, or -1 when the caller is to run it itself
 * (nothing listens, or the daemon does not serve it). */
int brisk_forward(const char *host, int argc, char **argv);

/* brisk.host.serve(path, handler[, opts]) */
int brisk_host_serve(lua_State *L);

#endif
