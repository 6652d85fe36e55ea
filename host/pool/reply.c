/*
 * reply.c — building a sesh_reply (see api.h).
 */
#include "pool/api.h"
#include "pool/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sesh_reply_init(sesh_reply *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

void sesh_reply_free(sesh_reply *r)
{
    json_decref(r->json);
    free(r->text);
    if (r->fd >= 0) close(r->fd);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    sesh_reply_init(r);
}

void sesh_reply_header(sesh_reply *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders >= (int)(sizeof r->headers / sizeof r->headers[0])) return;
    va_list ap;
    va_start(ap, fmt);
    char *value = sesh_xvprintf(fmt, ap);
    va_end(ap);
    r->headers[r->nheaders].name = sesh_xstrdup(name);
    r->headers[r->nheaders].value = value;
    r->nheaders++;
}

void sesh_reply_json(sesh_reply *r, int status, json_t *body)
{
    json_decref(r->json);
    r->status = status;
    r->json = body;
}

void sesh_reply_error(sesh_reply *r, int status, const char *code, const char *target,
                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (!err) /* a message that is not UTF-8 (a client's bytes): say it plainly */
        err = json_pack("{s:s, s:s}", "code", code, "message", "the request is invalid");
    if (target) json_object_set_new(err, "target", json_string(target));
    sesh_reply_json(r, status, json_pack("{s:o}", "error", err));
    r->error_code = code;
    sesh_reply_header(r, "x-ms-error-code", "%s", code);
}
