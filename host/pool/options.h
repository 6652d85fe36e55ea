/*
 * options.h — sesh-pool's command line: what each option holds, its --help,
 * and the checks of options that go together. main.c acts on them.
 */
#ifndef SESH_POOL_OPTIONS_H
#define SESH_POOL_OPTIONS_H

#include <stdio.h>

#define SESH_POOL_MAX_ORIGINS 16    /* --mcp-allow-origin, at most */

typedef struct sesh_pool_options {
    const char *listen, *socket, *token_file, *state_dir, *python;
    const char *pid_file, *log_file;
    const char *tls_cert, *tls_key;     /* HTTPS */
    int idle_exit, daemon, ready, cooldown, max_sessions, timeout, network;
    long long max_upload, max_output, max_disk;
    long long min_free_disk;    /* bytes, or -percent of the file system (resolved in setup) */
    int min_free_default;       /* not given: 5%, at most 1 GiB */
    const char *mcp_key_file;           /* MCP over HTTP at /mcp, guarded by this key */
    const char *mcp_origins[SESH_POOL_MAX_ORIGINS + 1];
    int mcp_norigins, mcp_stdio;
    long long session_memory;
    int max_connections, max_per_client, header_timeout, idle_timeout, min_body_rate;
    int shell;                  /* --container-type Shell: shell commands only */
    int no_fork_server, fork_server_forks, fork_server_age;
} sesh_pool_options;

/* Prints --help to f. */
void sesh_pool_usage(FILE *f);

/* Fills o from argv (zeroed first; --help prints and exits 0). 0, or -1
 * once a message naming the option is on stderr. */
int sesh_pool_options_parse(int argc, char **argv, sesh_pool_options *o);

#endif
