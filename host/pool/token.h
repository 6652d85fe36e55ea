/*
 * token.h — the secrets that guard the pool: the API token (--token-file)
 * and the MCP key (--mcp-key-file), each one line of a file.
 */
#ifndef SESH_POOL_TOKEN_H
#define SESH_POOL_TOKEN_H

/* The secret in path: its first line, blanks trimmed (malloc'd). NULL with
 * *err when it cannot be read or is empty. */
char *sesh_token_read(const char *path, char **err);

/* The same, or, when path does not exist, a new random secret (64 hex
 * digits) written there, 0600. */
char *sesh_token_load(const char *path, char **err);

#endif
