/*
 * mcp_tools.c — see mcp_tools.h. Each tool is a row of the table at the end:
 * its definition as JSON text (checked once, when tools/list builds it) and
 * the function that runs it. Files are moved with files.h, as the REST API's
 * api_files.c does; Python runs through the session manager, and its outcome
 * is the REST API's (sesh_run_outcome).
 */
#include "pool/mcp_tools.h"
#include "pool/api_ops.h"
#include "pool/files.h"
#include "pool/mcp_shell.h"
#include "pool/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LISTED 1000          /* entries listFiles returns at most */

/* ---- results ---- */

/* {"type":"text","text":...}; text that is not UTF-8 is said so. */
static json_t *text_block(const char *text)
{
    json_t *t = json_string(text);
    if (!t) t = json_string("(the text is not valid UTF-8)");
    return json_pack("{s:s, s:o}", "type", "text", "text", t);
}

/* A result: the structured content, the same as a text block first, then
 * `more` blocks (stolen, may be NULL). */
static json_t *result(json_t *structured, int is_error, json_t *more)
{
    char *text = json_dumps(structured, JSON_COMPACT);
    json_t *content = json_array();
    json_array_append_new(content, text_block(text ? text : "{}"));
    free(text);
    if (more) json_array_extend(content, more);
    json_decref(more);
    return json_pack("{s:o, s:o, s:b}", "content", content, "structuredContent", structured,
                     "isError", is_error);
}

/* A tool error: what went wrong, for the model, as one text block. */
static json_t *failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = sesh_xvprintf(fmt, ap);
    va_end(ap);
    json_t *r = json_pack("{s:[o], s:b}", "content", text_block(msg),
                          "isError", 1);
    free(msg);
    return r;
}

/* ---- arguments ---- */

static int bad_args(char **rpc, const char *fmt, const char *key)
{
    *rpc = sesh_printf(fmt, key);
    return -1;
}

/* A string argument. Absent: *out = NULL, an error only when required. */
static int arg_string(json_t *args, const char *key, int required, const char **out, size_t *len,
                      char **rpc)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) {
        if (required) return bad_args(rpc, "%s is required (a string)", key);
        return 0;
    }
    if (!json_is_string(v)) return bad_args(rpc, "%s must be a string", key);
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return 0;
}

static int arg_bool(json_t *args, const char *key, int *out, char **rpc)
{
    json_t *v = json_object_get(args, key);
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad_args(rpc, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* ---- environments and files ---- */

static json_t *session_failure(const sesh_mcp_tool_call *call, sesh_sess_status st, const char *msg)
{
    switch (st) {
    case SESH_SESS_NOT_FOUND:
        return failure("there is no environment with this environmentId: it was closed, ended "
                       "after %d s without use, or was never launched; call launchShell for a "
                       "new one", call->cfg->cooldown);
    case SESH_SESS_FULL:
        return failure("the pool already holds its maximum of sessions; close an environment "
                       "you are done with (closeEnvironment) or try again later");
    case SESH_SESS_BUSY:
        return failure("too many executions are waiting in this environment; try again later");
    case SESH_SESS_STOPPING:
        return failure("the pool is shutting down");
    default:
        return failure("cannot allocate the environment's session: %s", msg ? msg : "unknown error");
    }
}

/* The session of the environment named by the arguments; NULL when *fail
 * (a tool error) or *rpc (bad arguments) is set instead. */
static sesh_session *open_env(sesh_mcp_tool_call *call, json_t *args, json_t **fail, char **rpc)
{
    const char *id;
    *fail = NULL;
    if (arg_string(args, "environmentId", 1, &id, NULL, rpc) != 0) return NULL;
    sesh_session *s = NULL;
    char *err = NULL;
    sesh_sess_status st = sesh_mcp_envs_acquire(call->envs, id, &s, NULL, &err);
    if (st != SESH_SESS_OK) {
        *fail = session_failure(call, st, err);
        free(err);
        return NULL;
    }
    memcpy(call->log_session, sesh_session_guid(s), 8);
    call->log_session[8] = '\0';
    return s;
}

static json_t *files_failure(const char *path, sesh_files_status st, char *err)
{
    const char *what = st == SESH_FILES_BAD_NAME ? "is not a usable path"
                     : st == SESH_FILES_NOT_FOUND ? "does not exist"
                     : st == SESH_FILES_CONFLICT ? "is a directory where a file is needed, or the reverse"
                     : st == SESH_FILES_TOO_LARGE ? "is too large" : "cannot be used";
    json_t *r = err ? failure("%s", err) : failure("'%.300s' %s", path, what);   /* files.c names the path */
    free(err);
    return r;
}

/* The path argument, cleaned to a path relative to /mnt/data. */
static char *arg_path(json_t *args, const char *key, int required, json_t **fail, char **rpc)
{
    const char *path;
    *fail = NULL;
    if (arg_string(args, key, required, &path, NULL, rpc) != 0) return NULL;
    char *rel = NULL, *err = NULL;
    sesh_files_status st = sesh_files_clean_name(path ? path : "", !required, &rel, &err);
    if (st != SESH_FILES_OK) {
        *fail = files_failure(path ? path : "", st, err);
        return NULL;
    }
    return rel;
}

static json_t *file_entry(const char *path, const sesh_file_info *f)
{
    char when[48];
    sesh_format_time(when, f->mtime, 3);
    return json_pack("{s:s, s:s, s:I, s:s}", "path", path, "type", f->is_dir ? "directory" : "file",
                     "sizeInBytes", (json_int_t)f->size, "lastModifiedAt", when);
}

/* ---- the tools ---- */

static json_t *launch_shell(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    char id[37];
    if (sesh_mcp_envs_launch(call->envs, call->owner, id) != 0)
        return failure("the pool already holds its maximum of %d environments; close one you "
                       "are done with (closeEnvironment) or wait until idle ones end",
                       call->cfg->max_environments);
    return result(json_pack("{s:s}", "environmentId", id), 0, NULL);
}

/* An image result of a cell as an MCP image block; NULL when malformed. */
static json_t *image_block(json_t *image)
{
    const char *format = json_string_value(json_object_get(image, "format"));
    json_t *data = json_object_get(image, "base64_data");
    if (!format || !json_is_string(data) || strlen(format) > 16 || strspn(format, "abcdefghijklmnopqrstuvwxyz") != strlen(format))
        return NULL;
    char mime[32];
    snprintf(mime, sizeof mime, "image/%s", format);
    return json_pack("{s:s, s:O, s:s}", "type", "image", "data", data, "mimeType", mime);
}

static json_t *run_python(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    const char *code;
    size_t code_len;
    if (arg_string(args, "pythonCode", 1, &code, &code_len, rpc) != 0) return NULL;
    if (!sesh_manager_runs_python(call->cfg->manager))
        return failure("this pool runs shell commands only (sesh-pool --container-type Shell): "
                       "use runShellCommandInRemoteEnvironment, with python3 if you need Python");
    json_t *fail;
    sesh_session *s = open_env(call, args, &fail, rpc);
    if (!s) return fail;
    json_t *rq = json_pack("{s:s, s:s%, s:I, s:b}", "op", "execute", "code", code, code_len,
                           "max_output", (json_int_t)call->cfg->max_output, "jupyter", 0);
    sesh_run run;
    sesh_sess_status st = sesh_session_execute(s, rq, call->cfg->timeout * 1000, NULL, call->watch, &run);
    json_decref(rq);
    sesh_session_release(s);
    if (st != SESH_SESS_OK) return session_failure(call, st, NULL);
    if (!run.started) {
        json_t *r = failure("cannot start the environment's sandbox: %s", run.error ? run.error : "unknown error");
        sesh_run_clear(&run);
        return r;
    }
    json_t *o = sesh_run_outcome(&run);
    sesh_run_clear(&run);
    json_t *value = json_object_get(o, "result");
    json_t *more = NULL;
    if (json_is_object(value) && json_is_string(json_object_get(value, "base64_data"))) {
        json_t *block = image_block(value);
        if (block) more = json_pack("[o]", block);
        value = json_deep_copy(value);             /* the picture goes in its block only */
        json_object_del(value, "base64_data");
    } else {
        json_incref(value);
    }
    int failed = strcmp(json_string_value(json_object_get(o, "status")), "Success") != 0;
    json_t *structured = json_pack("{s:O, s:O, s:O, s:o, s:O}", "status", json_object_get(o, "status"),
                                   "stdout", json_object_get(o, "stdout"), "stderr", json_object_get(o, "stderr"),
                                   "result", value ? value : json_null(),
                                   "executionTimeInMilliseconds", json_object_get(o, "ms"));
    json_decref(o);
    return result(structured, failed, more);
}

static json_t *run_shell(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    const char *line;
    if (arg_string(args, "shellCommand", 0, &line, NULL, rpc) != 0) return NULL;
    json_t *list = json_object_get(args, "execCommandAndArgs");
    if (json_is_null(list)) list = NULL;
    if (!line == !list) {
        bad_args(rpc, "%s", "give exactly one of shellCommand (a command line) and "
                 "execCommandAndArgs (a list of strings)");
        return NULL;
    }
    size_t argc = json_array_size(list);
    int strings = json_is_array(list) || !list;
    for (size_t i = 0; i < argc; i++)
        strings = strings && json_is_string(json_array_get(list, i));
    if (list && (!strings || argc == 0)) {
        bad_args(rpc, "%s", "execCommandAndArgs must be a non-empty list of strings");
        return NULL;
    }
    const char **argv = list ? sesh_xcalloc(argc + 1, sizeof *argv) : NULL;
    for (size_t i = 0; i < argc; i++)
        argv[i] = json_string_value(json_array_get(list, i));
    json_t *fail;
    sesh_session *s = open_env(call, args, &fail, rpc);
    if (!s) {
        free(argv);
        return fail;
    }
    sesh_mcp_shell_command cmd = { .shell_command = line, .argv = argv, .argc = argc,
                                   .timeout_ms = call->cfg->timeout * 1000,
                                   .max_output = call->cfg->max_output };
    json_t *out = NULL;
    char *why = NULL;
    sesh_mcp_shell_status st = sesh_mcp_shell_run(s, &cmd, call->watch, &out, &why);
    sesh_session_release(s);
    free(argv);
    if (st != SESH_MCP_SHELL_OK || !json_is_object(out)) {
        json_t *r = failure("%s", why ? why : "the command could not be run");
        free(why);
        json_decref(out);
        return r;
    }
    json_t *code = json_object_get(out, "exitCode");
    return result(out, !json_is_integer(code) || json_integer_value(code) != 0, NULL);
}

static json_t *upload_file(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    const char *content, *encoding;
    size_t len;
    if (arg_string(args, "content", 1, &content, &len, rpc) != 0 ||
        arg_string(args, "encoding", 0, &encoding, NULL, rpc) != 0)
        return NULL;
    int b64 = encoding && strcmp(encoding, "base64") == 0;
    if (encoding && !b64 && strcmp(encoding, "text") != 0) {
        bad_args(rpc, "%s", "encoding must be \"text\" or \"base64\"");
        return NULL;
    }
    json_t *fail;
    char *rel = arg_path(args, "path", 1, &fail, rpc);
    if (!rel) return fail;
    char *decoded = NULL;
    if (b64 && !(decoded = sesh_base64_decode(content, len, &len))) {
        free(rel);
        return failure("content is not valid base64 (encoding is \"base64\")");
    }
    const char *data = b64 ? decoded : content;
    uint64_t max = call->cfg->max_file;
    if (len > max) {
        free(rel);
        free(decoded);
        return failure("the file is %zu bytes; uploadFile takes files up to %llu bytes (the pool's "
                       "REST API takes larger ones)", len, (unsigned long long)max);
    }
    sesh_session *s = open_env(call, args, &fail, rpc);
    if (!s) {
        free(rel);
        free(decoded);
        return fail;
    }
    uid_t uid;
    gid_t gid;
    char *err = NULL;
    sesh_upload *up = NULL;
    sesh_file_info info;
    memset(&info, 0, sizeof info);
    int root = sesh_session_dirfd(s);
    /* The session's disk limit and the pool's free-space floor, as for the
     * REST API's uploads (api_files.c). */
    sesh_reply room;
    sesh_reply_init(&room);
    if (sesh_session_disk_room(s, call->cfg->min_free_disk, len, 1, 0, &room) != 0) {
        json_t *no = json_object_get(json_object_get(room.json, "error"), "message");
        json_t *r = failure("%s", json_is_string(no) ? json_string_value(no) : "no room for the file");
        sesh_reply_free(&room);
        sesh_session_release(s);
        free(rel);
        free(decoded);
        return r;
    }
    sesh_reply_free(&room);
    uint64_t replaced = 0;
    sesh_session_files_begin(s, &uid, &gid);
    sesh_files_status st = sesh_upload_begin(root, rel, max, uid, gid, &up, &err);
    sesh_session_files_end(s);
    if (st == SESH_FILES_OK) {
        st = sesh_upload_write(up, data, len, &err);
        if (st != SESH_FILES_OK) {
            sesh_upload_abort(up);
        } else {
            sesh_session_files_begin(s, &uid, &gid);
            st = sesh_upload_commit(up, uid, gid, &info, &replaced, &err);
            sesh_session_files_end(s);
        }
    }
    sesh_quota_done(sesh_session_quota(s), len, st == SESH_FILES_OK ? info.disk_bytes : 0, replaced);
    sesh_session_files_changed(s);
    sesh_session_release(s);
    free(decoded);
    json_t *r;
    if (st != SESH_FILES_OK) {
        r = files_failure(rel, st, err);
    } else {
        char when[48];
        sesh_format_time(when, info.mtime, 3);
        json_t *j = json_pack("{s:s, s:I, s:s}", "path", rel, "sizeInBytes", (json_int_t)info.size,
                              "lastModifiedAt", when);
        r = j ? result(j, 0, NULL) : failure("the path is not valid UTF-8");
    }
    sesh_file_info_free(&info);
    free(rel);
    return r;
}

/* Reads a whole file of at most max bytes; -1 when it is longer (it may
 * grow while read: code runs meanwhile). */
static int read_all(int fd, uint64_t max, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = sesh_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > max) break;
            cap *= 2;
            buf = sesh_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) n = (size_t)max + 1;
            break;
        }
        n += (size_t)r;
        if (n > max) break;
    }
    if (n > max) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static const char *image_type(const unsigned char *b, size_t n)
{
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "image/png";
    if (n >= 3 && memcmp(b, "\xff\xd8\xff", 3) == 0) return "image/jpeg";
    if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return "image/gif";
    return NULL;
}

static json_t *download_file(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    json_t *fail;
    char *rel = arg_path(args, "path", 1, &fail, rpc);
    if (!rel) return fail;
    sesh_session *s = open_env(call, args, &fail, rpc);
    if (!s) {
        free(rel);
        return fail;
    }
    int fd;
    uint64_t size;
    char *err = NULL, *data = NULL;
    size_t len = 0;
    sesh_files_status st = sesh_files_open_read(sesh_session_dirfd(s), rel, &fd, &size, &err);
    sesh_session_release(s);
    if (st != SESH_FILES_OK) {
        json_t *r = files_failure(rel, st, err);
        free(rel);
        return r;
    }
    uint64_t max = call->cfg->max_file;
    int too_large = size > max || read_all(fd, max, &data, &len) != 0;
    close(fd);
    if (too_large) {
        json_t *r = failure("'%.300s' is larger than the %llu bytes downloadFile returns (the pool's "
                            "REST API downloads larger files)", rel, (unsigned long long)max);
        free(rel);
        return r;
    }
    const char *image = image_type((const unsigned char *)data, len);
    json_t *text = image || memchr(data, 0, len) ? NULL : json_stringn(data, len);
    json_t *structured = json_pack("{s:s, s:I}", "path", rel, "sizeInBytes", (json_int_t)len);
    json_t *more = NULL;
    if (!structured) {
        json_decref(text);
        free(data);
        free(rel);
        return failure("the path is not valid UTF-8");
    }
    if (image) {
        char *b64 = sesh_base64_encode(data, len, NULL);
        json_object_set_new(structured, "mimeType", json_string(image));
        json_object_set_new(structured, "encoding", json_string("image"));
        more = json_pack("[{s:s, s:s, s:s}]", "type", "image", "data", b64, "mimeType", image);
        free(b64);
    } else if (text) {
        json_object_set_new(structured, "mimeType", json_string(sesh_files_content_type(rel)));
        json_object_set_new(structured, "encoding", json_string("text"));
        json_object_set_new(structured, "content", text);
    } else {
        char *b64 = sesh_base64_encode(data, len, NULL);
        json_object_set_new(structured, "mimeType", json_string(sesh_files_content_type(rel)));
        json_object_set_new(structured, "encoding", json_string("base64"));
        json_object_set_new(structured, "content", json_string(b64));
        free(b64);
    }
    free(data);
    free(rel);
    return result(structured, 0, more);
}

static json_t *list_files(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    int recursive;
    if (arg_bool(args, "recursive", &recursive, rpc) != 0) return NULL;
    json_t *fail;
    char *rel = arg_path(args, "path", 0, &fail, rpc);
    if (!rel) return fail;
    sesh_session *s = open_env(call, args, &fail, rpc);
    if (!s) {
        free(rel);
        return fail;
    }
    sesh_file_list list;
    char *err = NULL;
    sesh_files_status st = sesh_files_list(sesh_session_dirfd(s), rel, recursive, &list, &err);
    sesh_session_release(s);
    if (st != SESH_FILES_OK) {
        json_t *r = files_failure(*rel ? rel : ".", st, err);
        free(rel);
        return r;
    }
    json_t *files = json_array();
    size_t shown = 0;
    for (size_t i = 0; i < list.n && shown < MAX_LISTED; i++) {
        char *under = sesh_files_join(list.items[i].directory, list.items[i].name);
        char *path = sesh_files_join(rel, under);
        json_t *entry = file_entry(path, &list.items[i]);
        if (entry) {                 /* a name that is not UTF-8 is left out, as the REST API does */
            json_array_append_new(files, entry);
            shown++;
        }
        free(path);
        free(under);
    }
    int truncated = shown < list.n && shown == MAX_LISTED;
    sesh_file_list_free(&list);
    free(rel);
    return result(json_pack("{s:o, s:b}", "files", files, "truncated", truncated), 0, NULL);
}

static json_t *close_environment(sesh_mcp_tool_call *call, json_t *args, char **rpc)
{
    const char *id;
    if (arg_string(args, "environmentId", 1, &id, NULL, rpc) != 0) return NULL;
    if (sesh_mcp_envs_close(call->envs, id) != 0)
        return session_failure(call, SESH_SESS_NOT_FOUND, NULL);
    return result(json_pack("{s:s, s:b}", "environmentId", id, "closed", 1), 0, NULL);
}

/* ---- the table ---- */

#define ENV_ID "\"environmentId\": {\"type\": \"string\", \"description\": \"The id launchShell returned.\"}"
#define FILE_ENTRY "{\"type\": \"object\", \"properties\": {" \
    "\"path\": {\"type\": \"string\", \"description\": \"Relative to /mnt/data.\"}," \
    "\"type\": {\"type\": \"string\", \"enum\": [\"file\", \"directory\"]}," \
    "\"sizeInBytes\": {\"type\": \"integer\"}," \
    "\"lastModifiedAt\": {\"type\": \"string\"}}, \"required\": [\"path\", \"type\", \"sizeInBytes\"]}"

typedef struct tool {
    const char *name;
    json_t *(*run)(sesh_mcp_tool_call *call, json_t *args, char **rpc);
    const char *definition;      /* JSON without the name */
} tool;

static const tool TOOLS[] = {
    { "launchShell", launch_shell,
      "{\"title\": \"Launch an environment\","
      " \"description\": \"Creates an environment, a sandboxed session with a Python interpreter (IPython), "
      "a shell and a /mnt/data folder, and returns its environmentId for the other tools. Its session starts "
      "at the first use; it ends with closeEnvironment, when idle past the pool's cooldown, or when this MCP "
      "session ends.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {}},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"environmentId\": {\"type\": \"string\"}}, \"required\": [\"environmentId\"]},"
      " \"annotations\": {\"title\": \"Launch an environment\", \"readOnlyHint\": false, "
      "\"destructiveHint\": false, \"idempotentHint\": false, \"openWorldHint\": false}}" },
    { "runPythonCodeInRemoteEnvironment", run_python,
      "{\"title\": \"Run Python\","
      " \"description\": \"Runs Python code in an environment, as a notebook cell: variables, imports and "
      "files persist between calls, the working directory is /mnt/data, and the value of the last "
      "expression is returned as result (a matplotlib figure comes back as an image). Returns status "
      "(Success or Failure), stdout, stderr (with the traceback of an exception) and result. NumPy, "
      "pandas, matplotlib and scikit-learn are installed.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID ","
      " \"pythonCode\": {\"type\": \"string\", \"description\": \"The Python code to run.\"}},"
      " \"required\": [\"environmentId\", \"pythonCode\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"status\": {\"type\": \"string\", \"enum\": [\"Success\", \"Failure\"]},"
      "\"stdout\": {\"type\": \"string\"}, \"stderr\": {\"type\": \"string\"},"
      "\"result\": {\"description\": \"The value of the last expression: a number, string, boolean, "
      "the text of other objects, \\\"\\\" for None, null after an exception, or {type: image, format} "
      "for a figure (sent as an image block).\"},"
      "\"executionTimeInMilliseconds\": {\"type\": \"integer\"}},"
      " \"required\": [\"status\", \"stdout\", \"stderr\", \"result\", \"executionTimeInMilliseconds\"]},"
      " \"annotations\": {\"title\": \"Run Python\", \"readOnlyHint\": false, \"idempotentHint\": false}}" },
    { "runShellCommandInRemoteEnvironment", run_shell,
      "{\"title\": \"Run a shell command\","
      " \"description\": \"Runs a shell command in an environment, beside its Python, in /mnt/data. Give "
      "either shellCommand (a bash command line) or execCommandAndArgs (a program and its arguments, no "
      "shell). Returns stdout, stderr and exitCode.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID ","
      " \"shellCommand\": {\"type\": \"string\", \"description\": \"A command line run by bash.\"},"
      " \"execCommandAndArgs\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1,"
      " \"description\": \"A program and its arguments, run without a shell.\"}},"
      " \"required\": [\"environmentId\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"stdout\": {\"type\": \"string\"}, \"stderr\": {\"type\": \"string\"},"
      "\"exitCode\": {\"type\": \"integer\", \"description\": \"-1 when the command timed out or could not start.\"},"
      "\"executionTimeInMilliseconds\": {\"type\": \"integer\"}},"
      " \"required\": [\"stdout\", \"stderr\", \"exitCode\"]},"
      " \"annotations\": {\"title\": \"Run a shell command\", \"readOnlyHint\": false, \"idempotentHint\": false}}" },
    { "uploadFile", upload_file,
      "{\"title\": \"Upload a file\","
      " \"description\": \"Writes a file into an environment's /mnt/data (replacing one of the same path; "
      "folders are created). content is text, or base64 with encoding \\\"base64\\\".\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID ","
      " \"path\": {\"type\": \"string\", \"description\": \"Relative to /mnt/data, e.g. data/input.csv.\"},"
      " \"content\": {\"type\": \"string\", \"description\": \"The file's content.\"},"
      " \"encoding\": {\"type\": \"string\", \"enum\": [\"text\", \"base64\"], \"default\": \"text\"}},"
      " \"required\": [\"environmentId\", \"path\", \"content\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"path\": {\"type\": \"string\"}, \"sizeInBytes\": {\"type\": \"integer\"},"
      " \"lastModifiedAt\": {\"type\": \"string\"}}, \"required\": [\"path\", \"sizeInBytes\"]},"
      " \"annotations\": {\"title\": \"Upload a file\", \"readOnlyHint\": false, \"destructiveHint\": true,"
      " \"idempotentHint\": true, \"openWorldHint\": false}}" },
    { "downloadFile", download_file,
      "{\"title\": \"Download a file\","
      " \"description\": \"Reads a file of an environment's /mnt/data: text comes back as text, a PNG, "
      "JPEG or GIF picture as an image, anything else as base64.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID ","
      " \"path\": {\"type\": \"string\", \"description\": \"Relative to /mnt/data.\"}},"
      " \"required\": [\"environmentId\", \"path\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"path\": {\"type\": \"string\"}, \"sizeInBytes\": {\"type\": \"integer\"},"
      " \"mimeType\": {\"type\": \"string\"},"
      " \"encoding\": {\"type\": \"string\", \"enum\": [\"text\", \"base64\", \"image\"]},"
      " \"content\": {\"type\": \"string\", \"description\": \"The text, or the base64 of other bytes; "
      "absent for a picture, which is an image block.\"}},"
      " \"required\": [\"path\", \"sizeInBytes\", \"mimeType\", \"encoding\"]},"
      " \"annotations\": {\"title\": \"Download a file\", \"readOnlyHint\": true, \"openWorldHint\": false}}" },
    { "listFiles", list_files,
      "{\"title\": \"List files\","
      " \"description\": \"Lists the files and folders of an environment's /mnt/data, or of a folder in it.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID ","
      " \"path\": {\"type\": \"string\", \"description\": \"A folder relative to /mnt/data (default: /mnt/data itself).\"},"
      " \"recursive\": {\"type\": \"boolean\", \"default\": false}},"
      " \"required\": [\"environmentId\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"files\": {\"type\": \"array\", \"items\": " FILE_ENTRY "},"
      " \"truncated\": {\"type\": \"boolean\", \"description\": \"More entries exist than were listed.\"}},"
      " \"required\": [\"files\"]},"
      " \"annotations\": {\"title\": \"List files\", \"readOnlyHint\": true, \"openWorldHint\": false}}" },
    { "closeEnvironment", close_environment,
      "{\"title\": \"Close an environment\","
      " \"description\": \"Ends an environment now: its Python, its processes and its files are deleted.\","
      " \"inputSchema\": {\"type\": \"object\", \"properties\": {" ENV_ID "},"
      " \"required\": [\"environmentId\"]},"
      " \"outputSchema\": {\"type\": \"object\", \"properties\": {"
      "\"environmentId\": {\"type\": \"string\"}, \"closed\": {\"type\": \"boolean\"}},"
      " \"required\": [\"environmentId\", \"closed\"]},"
      " \"annotations\": {\"title\": \"Close an environment\", \"readOnlyHint\": false, "
      "\"destructiveHint\": true, \"idempotentHint\": true, \"openWorldHint\": false}}" },
};

#define NTOOLS (sizeof TOOLS / sizeof TOOLS[0])

json_t *sesh_mcp_tools_list(void)
{
    json_t *list = json_array();
    for (size_t i = 0; i < NTOOLS; i++) {
        json_error_t e;
        json_t *def = json_loads(TOOLS[i].definition, 0, &e);
        if (!def) abort();               /* a typo in the table above: the tests catch it */
        json_t *t = json_pack("{s:s}", "name", TOOLS[i].name);
        json_object_update(t, def);
        json_decref(def);
        json_array_append_new(list, t);
    }
    return list;
}

json_t *sesh_mcp_tools_call(sesh_mcp_tool_call *call, const char *name, json_t *args,
                            char **rpc_message)
{
    *rpc_message = NULL;
    call->log_session[0] = '\0';
    for (size_t i = 0; i < NTOOLS; i++) {
        if (strcmp(TOOLS[i].name, name) != 0) continue;
        json_t *empty = NULL;
        if (!args) args = empty = json_object();
        char *why = NULL;
        json_t *r = TOOLS[i].run(call, args, &why);
        json_decref(empty);
        if (!r) {
            *rpc_message = sesh_printf("Invalid arguments for tool %s: %s", name,
                                       why ? why : "they do not fit its input schema");
            free(why);
        }
        return r;
    }
    *rpc_message = sesh_printf("Unknown tool: %.100s", name);
    return NULL;
}
