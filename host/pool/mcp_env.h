/*
 * mcp_env.h — the MCP server's environments: the ids launchShell hands out,
 * each the identifier of a pool session that is allocated at its first use.
 *
 * Only ids handed out here are accepted by the tools, so an MCP client can
 * never reach a session of the REST API by naming it. Each id remembers the
 * MCP session that launched it (its owner, 0 for none), so that session's
 * end can delete them. An id unused for the cooldown is forgotten, unless the
 * pool still holds its session (used meanwhile through the REST API). At most
 * `max` ids are held at once, which bounds memory whatever a client does.
 */
#ifndef SESH_POOL_MCP_ENV_H
#define SESH_POOL_MCP_ENV_H

#include <stddef.h>
#include <stdint.h>
#include "pool/sessions.h"

typedef struct sesh_mcp_envs sesh_mcp_envs;

sesh_mcp_envs *sesh_mcp_envs_new(sesh_manager *m, int max, int cooldown);
/* Forgets every id; their sessions are left to the manager. */
void sesh_mcp_envs_free(sesh_mcp_envs *e);

/* A new environment id (a UUID) owned by `owner`. 0, or -1 when `max` ids
 * are held already. */
int sesh_mcp_envs_launch(sesh_mcp_envs *e, uint64_t owner, char id[37]);

/* The session of an environment, allocated on first use (as
 * sesh_manager_acquire with create). SESH_SESS_NOT_FOUND: no such id, or it
 * was closed or expired. On OK the caller releases the session. */
sesh_sess_status sesh_mcp_envs_acquire(sesh_mcp_envs *e, const char *id, sesh_session **out,
                                       int *created, char **err);

/* Deletes an environment and its session. 0, or -1 when the id is unknown. */
int sesh_mcp_envs_close(sesh_mcp_envs *e, const char *id);

/* Deletes every environment of an owner with its session; how many. */
size_t sesh_mcp_envs_end_owner(sesh_mcp_envs *e, uint64_t owner);

size_t sesh_mcp_envs_count(sesh_mcp_envs *e);

#endif
