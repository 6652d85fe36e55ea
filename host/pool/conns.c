/*
 * conns.c — see conns.h.
 *
 * One mutex guards the table: every connection on one list, those that may
 * be let go (never showed the token: the server serves such a connection
 * on its loop, never on a worker) also on two lists, the server's and their
 * address's, in the order they were opened or last answered; the addresses
 * in a hash table. The sweeper scans the whole list at the next
 * deadline (at most once a second otherwise, at least 20 ms apart): a few
 * microseconds per thousand connections.
 */
#include "pool/conns.h"
#include "pool/log.h"
#include "pool/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#define SWEEP_MAX_MS    1000
#define SWEEP_MIN_MS    20
#define REPORT_MS       10000   /* what was cut or refused, in the log at most this often */

typedef enum { WAIT_HEADERS, BODY, SERVING } phase;

typedef struct addr_key {
    unsigned char family;       /* AF_INET, AF_INET6 (a /64), or AF_UNIX */
    unsigned char bytes[8];
} addr_key;

typedef struct addr_rec {
    addr_key key;
    int open;                   /* connections until closed */
    int live;                   /* ... and not cut */
    sesh_conn *head, *tail;     /* its connections that may be let go, oldest first */
    struct addr_rec *next;      /* hash chain */
} addr_rec;

struct sesh_conn {
    sesh_conns *t;
    int fd;
    addr_rec *addr;
    phase ph;
    int authed;
    int cut;
    int spare;                  /* on the lists of those that may be let go */
    uint64_t deadline_ms;       /* WAIT_HEADERS */
    uint64_t body_start_ms;     /* BODY: when the headers were done, moved on by pauses */
    uint64_t paused_ms;         /* SERVING after BODY: since when */
    uint64_t received;          /* body bytes */
    sesh_conn *prev, *next;     /* all */
    sesh_conn *sprev, *snext;   /* the server's spare ones */
    sesh_conn *aprev, *anext;   /* the address's spare ones */
};

enum { CUT_HEADERS, CUT_BODY, CUT_LET_GO, REFUSED, NCOUNTS };

struct sesh_conns {
    sesh_conns_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t sweeper;
    int stopping;
    sesh_conn *all;
    sesh_conn *spare_head, *spare_tail;
    int live;                   /* open and not cut */
    int high, low;              /* let go of spare ones from high down to low */
    addr_rec **buckets;
    size_t nbuckets, naddrs;
    uint32_t seed;
    unsigned long counts[NCOUNTS];
    addr_key last_refused;
    uint64_t reported_ms;
};

/* ---- client addresses ---- */

static addr_key key_of(const struct sockaddr *sa)
{
    addr_key k;
    memset(&k, 0, sizeof k);
    if (sa && sa->sa_family == AF_INET) {
        k.family = AF_INET;
        memcpy(k.bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            k.family = AF_INET;
            memcpy(k.bytes, a->s6_addr + 12, 4);
        } else {
            k.family = AF_INET6;
            memcpy(k.bytes, a->s6_addr, 8);
        }
    } else {
        k.family = AF_UNIX;
    }
    return k;
}

static void describe(const addr_key *k, char *out, size_t n)
{
    if (k->family == AF_INET) {
        inet_ntop(AF_INET, k->bytes, out, (socklen_t)n);
    } else if (k->family == AF_INET6) {
        unsigned char full[16] = { 0 };
        char text[INET6_ADDRSTRLEN];
        memcpy(full, k->bytes, 8);
        inet_ntop(AF_INET6, full, text, sizeof text);
        snprintf(out, n, "%s/64", text);
    } else {
        snprintf(out, n, "unix socket");
    }
}

static size_t bucket_of(const sesh_conns *t, const addr_key *k)
{
    uint32_t h = 2166136261u ^ t->seed;            /* FNV-1a, seeded */
    const unsigned char *p = (const unsigned char *)k;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 16777619u;
    return h & (t->nbuckets - 1);
}

static void grow(sesh_conns *t)
{
    size_t old = t->nbuckets;
    addr_rec **was = t->buckets;
    t->nbuckets = old * 2;
    t->buckets = sesh_xcalloc(t->nbuckets, sizeof *t->buckets);
    for (size_t i = 0; i < old; i++) {
        for (addr_rec *a = was[i], *next; a; a = next) {
            next = a->next;
            size_t b = bucket_of(t, &a->key);
            a->next = t->buckets[b];
            t->buckets[b] = a;
        }
    }
    free(was);
}

static addr_rec *find_addr(sesh_conns *t, const addr_key *k)
{
    for (addr_rec *a = t->buckets[bucket_of(t, k)]; a; a = a->next)
        if (memcmp(&a->key, k, sizeof *k) == 0) return a;
    return NULL;
}

static addr_rec *get_addr(sesh_conns *t, const addr_key *k)
{
    addr_rec *a = find_addr(t, k);
    if (a) return a;
    if (t->naddrs >= t->nbuckets) grow(t);
    a = sesh_xcalloc(1, sizeof *a);
    a->key = *k;
    size_t b = bucket_of(t, k);
    a->next = t->buckets[b];
    t->buckets[b] = a;
    t->naddrs++;
    return a;
}

static void put_addr(sesh_conns *t, addr_rec *a)
{
    if (a->open > 0) return;
    for (addr_rec **p = &t->buckets[bucket_of(t, &a->key)]; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    t->naddrs--;
    free(a);
}

/* ---- the spare lists: connections that may be let go ---- */

static void spare_add(sesh_conn *c)
{
    sesh_conns *t = c->t;
    addr_rec *a = c->addr;
    if (c->spare || c->authed || c->cut) return;
    c->spare = 1;
    c->snext = NULL;
    c->sprev = t->spare_tail;
    if (t->spare_tail) t->spare_tail->snext = c;
    else t->spare_head = c;
    t->spare_tail = c;
    c->anext = NULL;
    c->aprev = a->tail;
    if (a->tail) a->tail->anext = c;
    else a->head = c;
    a->tail = c;
}

static void spare_remove(sesh_conn *c)
{
    sesh_conns *t = c->t;
    addr_rec *a = c->addr;
    if (!c->spare) return;
    c->spare = 0;
    if (c->sprev) c->sprev->snext = c->snext;
    else t->spare_head = c->snext;
    if (c->snext) c->snext->sprev = c->sprev;
    else t->spare_tail = c->sprev;
    if (c->aprev) c->aprev->anext = c->anext;
    else a->head = c->anext;
    if (c->anext) c->anext->aprev = c->aprev;
    else a->tail = c->aprev;
    c->sprev = c->snext = c->aprev = c->anext = NULL;
}

/* Ends c's connection (see conns.h); the server closes it when it notices. */
static void cut(sesh_conn *c, int why)
{
    if (c->cut) return;
    spare_remove(c);
    c->cut = 1;
    c->t->live--;
    c->addr->live--;
    c->t->counts[why]++;
    shutdown(c->fd, SHUT_RDWR);
}

/* ---- admission ---- */

int sesh_conns_admit(sesh_conns *t, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    addr_key k = key_of(addr);
    pthread_mutex_lock(&t->mu);
    if (t->cfg.max_per_client > 0 && k.family != AF_UNIX) {
        addr_rec *a = find_addr(t, &k);
        if (a && a->live >= t->cfg.max_per_client) {
            if (!a->head) {
                t->counts[REFUSED]++;
                t->last_refused = k;
                pthread_mutex_unlock(&t->mu);
                return 0;
            }
            cut(a->head, CUT_LET_GO);
        }
    }
    if (t->live + 1 > t->high)
        while (t->live + 1 > t->low && t->spare_head) cut(t->spare_head, CUT_LET_GO);
    pthread_mutex_unlock(&t->mu);
    return 1;
}

sesh_conn *sesh_conns_open(sesh_conns *t, int fd, const struct sockaddr *addr)
{
    addr_key k = key_of(addr);
    sesh_conn *c = sesh_xcalloc(1, sizeof *c);
    c->t = t;
    c->fd = fd;
    pthread_mutex_lock(&t->mu);
    c->addr = get_addr(t, &k);
    c->addr->open++;
    c->addr->live++;
    t->live++;
    c->ph = WAIT_HEADERS;
    c->deadline_ms = sesh_now_ms() + (uint64_t)t->cfg.header_timeout_ms;
    c->next = t->all;
    if (t->all) t->all->prev = c;
    t->all = c;
    spare_add(c);
    pthread_mutex_unlock(&t->mu);
    return c;
}

void sesh_conns_close(sesh_conns *t, sesh_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&t->mu);
    spare_remove(c);
    if (!c->cut) {
        t->live--;
        c->addr->live--;
    }
    if (c->prev) c->prev->next = c->next;
    else t->all = c->next;
    if (c->next) c->next->prev = c->prev;
    c->addr->open--;
    put_addr(t, c->addr);
    pthread_mutex_unlock(&t->mu);
    free(c);
}

/* ---- a request's life ---- */

void sesh_conn_headers_done(sesh_conn *c, int authenticated, int body)
{
    if (!c) return;
    sesh_conns *t = c->t;
    pthread_mutex_lock(&t->mu);
    if (authenticated) {
        c->authed = 1;
        spare_remove(c);
    }
    c->ph = body ? BODY : SERVING;
    c->body_start_ms = sesh_now_ms();
    c->received = 0;
    pthread_mutex_unlock(&t->mu);
}

void sesh_conn_body(sesh_conn *c, size_t n)
{
    if (!c) return;
    pthread_mutex_lock(&c->t->mu);
    c->received += n;
    pthread_mutex_unlock(&c->t->mu);
}

void sesh_conn_pause(sesh_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->t->mu);
    if (c->ph == BODY) c->paused_ms = sesh_now_ms();
    c->ph = SERVING;
    pthread_mutex_unlock(&c->t->mu);
}

void sesh_conn_resume_body(sesh_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->t->mu);
    if (c->paused_ms) c->body_start_ms += sesh_now_ms() - c->paused_ms;
    c->paused_ms = 0;
    c->ph = BODY;
    pthread_mutex_unlock(&c->t->mu);
}

void sesh_conn_done(sesh_conn *c)
{
    if (!c) return;
    sesh_conns *t = c->t;
    pthread_mutex_lock(&t->mu);
    c->ph = WAIT_HEADERS;
    c->paused_ms = 0;
    c->deadline_ms = sesh_now_ms() + (uint64_t)t->cfg.keepalive_timeout_ms;
    spare_remove(c);            /* to the end of the lists: idle since now */
    spare_add(c);
    pthread_mutex_unlock(&t->mu);
}

/* ---- the sweeper ---- */

/* When c must be cut at the latest (UINT64_MAX: no deadline). For a body
 * this is the deadline should no more bytes come. */
static uint64_t deadline_of(const sesh_conns *t, const sesh_conn *c)
{
    if (c->cut) return UINT64_MAX;
    if (c->ph == WAIT_HEADERS) return c->deadline_ms;
    if (c->ph == BODY && t->cfg.min_body_rate > 0)
        return c->body_start_ms + (uint64_t)t->cfg.header_timeout_ms +
               c->received * 1000 / (uint64_t)t->cfg.min_body_rate;
    return UINT64_MAX;
}

/* Cuts what is due; returns the next deadline. Lock held. */
static uint64_t sweep(sesh_conns *t, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (sesh_conn *c = t->all; c; c = c->next) {
        uint64_t due = deadline_of(t, c);
        if (due <= now) cut(c, c->ph == BODY ? CUT_BODY : CUT_HEADERS);
        else if (due < next) next = due;
    }
    return next;
}

/* One line for what was cut or refused since the last one. Lock held. */
static void report(sesh_conns *t, uint64_t now, int force)
{
    static const char *const what[NCOUNTS] = {
        [CUT_HEADERS] = "closed with headers not complete in time",
        [CUT_BODY] = "closed with a body slower than the least rate",
        [CUT_LET_GO] = "let go that never showed the token, to make room",
        [REFUSED] = "refused from a client address at its bound",
    };
    char line[512];
    size_t len = 0;
    for (int i = 0; i < NCOUNTS; i++) {
        if (!t->counts[i]) continue;
        int n = snprintf(line + len, sizeof line - len, "%s%lu %s", len ? ", " : "", t->counts[i], what[i]);
        if (n > 0 && (size_t)n < sizeof line - len) len += (size_t)n;
    }
    if (!len || (!force && t->reported_ms && now - t->reported_ms < REPORT_MS)) return;
    char who[INET6_ADDRSTRLEN + 8];
    describe(&t->last_refused, who, sizeof who);
    if (t->counts[REFUSED])
        sesh_log("connections: %s (the last from %s, bound %d)", line, who, t->cfg.max_per_client);
    else
        sesh_log("connections: %s", line);
    memset(t->counts, 0, sizeof t->counts);
    t->reported_ms = now;
}

static void *sweeper_main(void *arg)
{
    sesh_conns *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        uint64_t now = sesh_now_ms();
        uint64_t next = sweep(t, now);
        report(t, now, 0);
        uint64_t wait_ms = next == UINT64_MAX || next - now > SWEEP_MAX_MS ? SWEEP_MAX_MS : next - now;
        if (wait_ms < SWEEP_MIN_MS) wait_ms = SWEEP_MIN_MS;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(wait_ms / 1000);
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->wake, &t->mu, &until);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

sesh_conns *sesh_conns_new(const sesh_conns_config *cfg, char **err)
{
    sesh_conns *t = sesh_xcalloc(1, sizeof *t);
    t->cfg = *cfg;
    if (t->cfg.max_connections < 2) t->cfg.max_connections = 2;
    int limit = t->cfg.max_connections;
    t->high = limit - (limit / 8 > 1 ? limit / 8 : 1);
    t->low = t->high - (limit / 16 > 1 ? limit / 16 : 1);
    if (t->low < 1) t->low = 1;
    t->nbuckets = 64;
    t->buckets = sesh_xcalloc(t->nbuckets, sizeof *t->buckets);
    sesh_random_bytes(&t->seed, sizeof t->seed);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&t->sweeper, NULL, sweeper_main, t);
    if (rc != 0) {
        if (err) *err = sesh_printf("cannot start the connection sweeper thread: %s", strerror(rc));
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->wake);
        free(t->buckets);
        free(t);
        return NULL;
    }
    return t;
}

void sesh_conns_free(sesh_conns *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->sweeper, NULL);
    report(t, sesh_now_ms(), 1);
    while (t->all) sesh_conns_close(t, t->all);   /* none, when the server closed them all */
    free(t->buckets);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->wake);
    free(t);
}
