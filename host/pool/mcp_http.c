/*
 * mcp_http.c — the streamable HTTP transport (MCP 2025-03-26 and 2025-06-18,
 * "Transports"): sesh_mcp_http() of mcp.h.
 *
 * In order: the Origin (a browser page must not reach a local server through
 * DNS rebinding), the key, the method (POST a message, DELETE a session; no
 * GET stream, so 405), the media types, the protocol version header, the MCP
 * session. A POST is answered with one JSON body (never an SSE stream: the
 * server sends nothing but answers), or 202 when it held no request.
 * Refusals carry a JSON-RPC error with a null id, as the SDKs' servers send.
 */
#include "pool/mcp_core.h"
#include "pool/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void refuse(sesh_reply *reply, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(sesh_reply *reply, int status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sesh_reply_json(reply, status, sesh_mcp_error(NULL, code, msg));
}

/* ---- Origin ---- */

/* Whether host (no port, IPv6 without brackets) is this machine. */
static int loopback_host(const char *host)
{
    if (strcasecmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

/* "http(s)://host[:port]" with a loopback host. */
static int loopback_origin(const char *origin)
{
    const char *p;
    if (strncasecmp(origin, "http://", 7) == 0) p = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0) p = origin + 8;
    else return 0;
    char host[256];
    size_t n;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (!end || (size_t)(end - p - 1) >= sizeof host) return 0;
        n = (size_t)(end - p - 1);
        memcpy(host, p + 1, n);
        p = end + 1;
    } else {
        n = strcspn(p, ":/");
        if (n >= sizeof host) return 0;
        memcpy(host, p, n);
        p += n;
    }
    host[n] = '\0';
    if (*p == ':') {                           /* a port: digits only */
        p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    return *p == '\0' && loopback_host(host);
}

static int origin_allowed(const sesh_mcp *mcp, const char *origin)
{
    if (loopback_origin(origin)) return 1;
    for (char **o = mcp->origins; *o; o++)
        if (strcmp(*o, "*") == 0 || strcasecmp(*o, origin) == 0) return 1;
    return 0;
}

/* ---- the key ---- */

static int key_matches(const sesh_mcp *mcp, const char *given)
{
    if (!mcp->key || !given) return 0;
    while (*given == ' ' || *given == '\t') given++;
    size_t n = strlen(given);
    while (n > 0 && (given[n - 1] == ' ' || given[n - 1] == '\t')) n--;
    return sesh_secret_equal(given, n, mcp->key, strlen(mcp->key));
}

static int authorized(const sesh_mcp *mcp, const sesh_mcp_http_request *rq)
{
    if (rq->api_key) return key_matches(mcp, rq->api_key);
    const char *h = rq->authorization;
    if (!h) return 0;
    while (*h == ' ') h++;
    return strncasecmp(h, "Bearer ", 7) == 0 && key_matches(mcp, h + 7);
}

/* ---- media types ---- */

/* Whether a comma-separated header lists a media type (parameters ignored). */
static int lists_type(const char *header, const char *type)
{
    size_t n = strlen(type);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (strncasecmp(p, type, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ';' ||
                                              p[n] == ' ' || p[n] == '\t'))
            return 1;
        p = strchr(p, ',');
    }
    return 0;
}

/* The answer is JSON: the client must take it (Azure's tutorial sends curl's
 * Accept: *, an SDK both JSON and event streams). */
static int accepts_json(const char *accept)
{
    return !accept || !*accept || lists_type(accept, "application/json") ||
           lists_type(accept, "application/*") || lists_type(accept, "*/*");
}

/* ---- the methods ---- */

/* The version header: NULL when absent; *bad when unsupported. */
static const char *header_version(const sesh_mcp_http_request *rq, int *bad)
{
    *bad = 0;
    if (!rq->protocol_version) return NULL;
    const char *v = sesh_mcp_supported_version(rq->protocol_version);
    *bad = v == NULL;
    return v;
}

static int is_initialize(json_t *msg)
{
    const char *m = json_string_value(json_object_get(msg, "method"));
    return m && strcmp(m, "initialize") == 0;
}

static void post(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply)
{
    if (rq->content_type && !lists_type(rq->content_type, "application/json")) {
        refuse(reply, 415, SESH_MCP_SERVER_ERROR, "Unsupported Media Type: the body must be application/json");
        return;
    }
    if (!accepts_json(rq->accept)) {
        refuse(reply, 406, SESH_MCP_SERVER_ERROR,
               "Not Acceptable: the client must accept application/json (this server answers JSON)");
        return;
    }
    int bad;
    const char *version = header_version(rq, &bad);
    if (bad) {
        refuse(reply, 400, SESH_MCP_SERVER_ERROR, "Bad Request: unsupported MCP-Protocol-Version "
               "(supported: " SESH_MCP_OLDEST ", " SESH_MCP_LATEST ")");
        return;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_DECODE_ANY, &jerr);
    if (!msg) {
        refuse(reply, 400, SESH_MCP_PARSE_ERROR, "Parse error: %s (at byte %d)", jerr.text, jerr.position);
        return;
    }
    sesh_mcp_session *s = NULL;
    int created = 0;
    if (rq->session_id) {
        s = sesh_mcp_session_find(mcp, rq->session_id);
        if (!s) {
            json_decref(msg);
            refuse(reply, 404, SESH_MCP_NO_SESSION, "Session not found: it ended or expired; "
                   "send a new initialize without Mcp-Session-Id");
            return;
        }
        if (is_initialize(msg)) {
            json_decref(msg);
            sesh_mcp_session_release(mcp, s);
            refuse(reply, 400, SESH_MCP_INVALID_REQUEST, "Invalid Request: this session is "
                   "initialized already; an initialize without Mcp-Session-Id starts a new one");
            return;
        }
    } else if (is_initialize(msg) && json_object_get(msg, "id")) {
        s = sesh_mcp_session_new(mcp, 0);
        if (!s) {
            json_decref(msg);
            refuse(reply, 503, SESH_MCP_SERVER_ERROR, "Service Unavailable: %d MCP sessions are "
                   "open; end some (DELETE) or retry later", SESH_MCP_MAX_SESSIONS);
            sesh_reply_header(reply, "Retry-After", "10");
            return;
        }
        created = 1;
    }
    if (!version) version = sesh_mcp_session_version(mcp, s, SESH_MCP_OLDEST);
    json_t *out = sesh_mcp_handle(mcp, s, msg, version, rq->client);
    json_decref(msg);
    if (created) {
        if (json_object_get(out, "result")) sesh_reply_header(reply, "Mcp-Session-Id", "%s", sesh_mcp_session_id(s));
        else sesh_mcp_session_end(mcp, s);
    }
    sesh_mcp_session_release(mcp, s);
    if (!out) {
        reply->status = 202;                    /* notifications and responses only */
        return;
    }
    /* A lone error without an id: the body was no JSON-RPC message we could take. */
    int unreadable = json_is_object(out) && json_object_get(out, "error") &&
                     json_is_null(json_object_get(out, "id"));
    sesh_reply_json(reply, unreadable ? 400 : 200, out);
}

static void delete(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply)
{
    int bad;
    header_version(rq, &bad);
    if (bad) {
        refuse(reply, 400, SESH_MCP_SERVER_ERROR, "Bad Request: unsupported MCP-Protocol-Version");
        return;
    }
    if (!rq->session_id) {
        refuse(reply, 400, SESH_MCP_SERVER_ERROR, "Bad Request: DELETE needs the Mcp-Session-Id header");
        return;
    }
    sesh_mcp_session *s = sesh_mcp_session_find(mcp, rq->session_id);
    if (!s) {
        refuse(reply, 404, SESH_MCP_NO_SESSION, "Session not found");
        return;
    }
    sesh_mcp_session_end(mcp, s);
    sesh_mcp_session_release(mcp, s);
    reply->status = 200;
}

int sesh_mcp_http_admit(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply)
{
    if (rq->origin && !origin_allowed(mcp, rq->origin)) {
        refuse(reply, 403, SESH_MCP_SERVER_ERROR, "Forbidden: this Origin may not use the MCP "
               "server (sesh-pool --mcp-allow-origin allows one)");
        return -1;
    }
    if (!authorized(mcp, rq)) {
        refuse(reply, 401, SESH_MCP_SERVER_ERROR, "Unauthorized: the MCP key is required in the "
               "x-ms-apikey header (or as Authorization: Bearer <key>)");
        return -1;
    }
    if (rq->body_len > SESH_MCP_MAX_MESSAGE) {
        refuse(reply, 413, SESH_MCP_SERVER_ERROR, "Payload Too Large: a message is at most %u bytes",
               (unsigned)SESH_MCP_MAX_MESSAGE);
        return -1;
    }
    return 0;
}

void sesh_mcp_http(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply)
{
    if (sesh_mcp_http_admit(mcp, rq, reply) != 0) return;
    const char *m = rq->method ? rq->method : "";
    if (strcmp(m, "POST") == 0) {
        post(mcp, rq, reply);
    } else if (strcmp(m, "DELETE") == 0) {
        delete(mcp, rq, reply);
    } else {
        refuse(reply, 405, SESH_MCP_SERVER_ERROR, "Method Not Allowed: POST a message, or DELETE the "
               "session (this server opens no event stream)");
        sesh_reply_header(reply, "Allow", "POST, DELETE");
    }
}
