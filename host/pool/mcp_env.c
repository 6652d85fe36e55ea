/*
 * mcp_env.c — see mcp_env.h. A list under one lock; the manager is called
 * outside it, since an allocation may start a sandbox.
 */
#include "pool/mcp_env.h"
#include "pool/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct env {
    char id[37];
    uint64_t owner;
    uint64_t last_ms;           /* launched or last used */
    struct env *next;
} env;

struct sesh_mcp_envs {
    sesh_manager *m;
    int max;
    uint64_t cooldown_ms;
    pthread_mutex_t mu;
    env *list;
    size_t count;
};

sesh_mcp_envs *sesh_mcp_envs_new(sesh_manager *m, int max, int cooldown)
{
    sesh_mcp_envs *e = sesh_xcalloc(1, sizeof *e);
    e->m = m;
    e->max = max > 0 ? max : 1;
    e->cooldown_ms = (uint64_t)(cooldown > 0 ? cooldown : 1) * 1000;
    pthread_mutex_init(&e->mu, NULL);
    return e;
}

void sesh_mcp_envs_free(sesh_mcp_envs *e)
{
    if (!e) return;
    for (env *v = e->list, *next; v; v = next) {
        next = v->next;
        free(v);
    }
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* Under the lock: the link that points at id's entry, or NULL. */
static env **find(sesh_mcp_envs *e, const char *id)
{
    for (env **p = &e->list; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) return p;
    return NULL;
}

static void unlink_entry(sesh_mcp_envs *e, env **p)
{
    env *v = *p;
    *p = v->next;
    e->count--;
    free(v);
}

/* Whether the pool still holds a session for id (REST clients may keep an
 * environment alive). */
static int session_alive(sesh_mcp_envs *e, const char *id)
{
    sesh_session *s;
    if (sesh_manager_acquire(e->m, id, 0, &s, NULL, NULL) != SESH_SESS_OK) return 0;
    sesh_session_release(s);
    return 1;
}

/* Forgets ids idle past the cooldown whose session is gone too. */
static void purge_expired(sesh_mcp_envs *e)
{
    uint64_t now = sesh_now_ms();
    size_t n = 0, cap = 0;
    char (*idle)[37] = NULL;
    pthread_mutex_lock(&e->mu);
    for (env *v = e->list; v; v = v->next) {
        if (now - v->last_ms < e->cooldown_ms) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            idle = sesh_xrealloc(idle, cap * sizeof *idle);
        }
        memcpy(idle[n++], v->id, 37);
    }
    pthread_mutex_unlock(&e->mu);
    for (size_t i = 0; i < n; i++) {
        if (session_alive(e, idle[i])) continue;
        pthread_mutex_lock(&e->mu);
        env **p = find(e, idle[i]);
        if (p && now - (*p)->last_ms >= e->cooldown_ms) unlink_entry(e, p);
        pthread_mutex_unlock(&e->mu);
    }
    free(idle);
}

int sesh_mcp_envs_launch(sesh_mcp_envs *e, uint64_t owner, char id[37])
{
    pthread_mutex_lock(&e->mu);
    int full = e->count >= (size_t)e->max;
    pthread_mutex_unlock(&e->mu);
    if (full) purge_expired(e);
    env *v = sesh_xcalloc(1, sizeof *v);
    sesh_uuid(v->id);
    v->owner = owner;
    v->last_ms = sesh_now_ms();
    pthread_mutex_lock(&e->mu);
    if (e->count >= (size_t)e->max) {
        pthread_mutex_unlock(&e->mu);
        free(v);
        return -1;
    }
    v->next = e->list;
    e->list = v;
    e->count++;
    memcpy(id, v->id, 37);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

sesh_sess_status sesh_mcp_envs_acquire(sesh_mcp_envs *e, const char *id, sesh_session **out,
                                       int *created, char **err)
{
    *out = NULL;
    if (created) *created = 0;
    uint64_t now = sesh_now_ms();
    pthread_mutex_lock(&e->mu);
    env **p = find(e, id);
    if (!p) {
        pthread_mutex_unlock(&e->mu);
        return SESH_SESS_NOT_FOUND;
    }
    int expired = now - (*p)->last_ms >= e->cooldown_ms;
    if (!expired) (*p)->last_ms = now;
    pthread_mutex_unlock(&e->mu);
    if (!expired)
        return sesh_manager_acquire(e->m, id, 1, out, created, err);

    /* Idle past the cooldown: alive only if its session is (REST use). */
    sesh_sess_status st = sesh_manager_acquire(e->m, id, 0, out, NULL, NULL);
    pthread_mutex_lock(&e->mu);
    p = find(e, id);
    if (p && st == SESH_SESS_OK) (*p)->last_ms = now;
    else if (p && st == SESH_SESS_NOT_FOUND) unlink_entry(e, p);
    pthread_mutex_unlock(&e->mu);
    return st;
}

int sesh_mcp_envs_close(sesh_mcp_envs *e, const char *id)
{
    pthread_mutex_lock(&e->mu);
    env **p = find(e, id);
    if (p) unlink_entry(e, p);
    pthread_mutex_unlock(&e->mu);
    if (!p) return -1;
    sesh_manager_remove(e->m, id);
    return 0;
}

size_t sesh_mcp_envs_end_owner(sesh_mcp_envs *e, uint64_t owner)
{
    env *mine = NULL;
    size_t n = 0;
    if (owner == 0) return 0;           /* stateless environments have no end but the cooldown */
    pthread_mutex_lock(&e->mu);
    for (env **p = &e->list; *p;) {
        env *v = *p;
        if (v->owner != owner) {
            p = &v->next;
            continue;
        }
        *p = v->next;
        e->count--;
        v->next = mine;
        mine = v;
        n++;
    }
    pthread_mutex_unlock(&e->mu);
    while (mine) {
        env *next = mine->next;
        sesh_manager_remove(e->m, mine->id);
        free(mine);
        mine = next;
    }
    return n;
}

size_t sesh_mcp_envs_count(sesh_mcp_envs *e)
{
    pthread_mutex_lock(&e->mu);
    size_t n = e->count;
    pthread_mutex_unlock(&e->mu);
    return n;
}
