/*
 * api_exec.c — executions: `POST code/execute` (first generation),
 * `POST executions` and `GET executions/{id}` (second), their request
 * checks and their answers (pool-api.md sections 4 to 6), of Python code and
 * of shell commands (section 9: shellCommand or execCommandAndArgs, an exit
 * code for a status).
 */
#include "pool/api_ops.h"
#include "pool/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct exec_req {
    int shell;                  /* a shell command, not Python */
    char *code;                 /* the Python source, or the shell's command line */
    size_t code_len;
    json_t *args;               /* execCommandAndArgs (borrowed from the body), or NULL */
    json_t *stdin_text;         /* a shell command's stdin (borrowed), or NULL */
    int timeout_s;
    size_t max_output;
    int jupyter;
    int async;
} exec_req;

static int bad(sesh_reply *reply, const char *target, const char *fmt, const char *detail)
{
    sesh_reply_error(reply, 400, "InvalidRequestBody", target, fmt, detail);
    return -1;
}

/* Reads an optional whole number; -1 with the error in reply when mistyped. */
static int get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out,
                   int *present, sesh_reply *reply)
{
    json_t *v = json_object_get(obj, key);
    *present = v != NULL && !json_is_null(v);
    if (!*present) return 0;
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v)) d = json_real_value(v);
    else return bad(reply, key, "%s must be a whole number", key);
    if (d < (double)lo || d > (double)hi) {
        sesh_reply_error(reply, 400, "InvalidRequestBody", key, "%s must be between %lld and %lld",
                         key, lo, hi);
        return -1;
    }
    *out = (long long)d;
    return 0;
}

static int get_enum(json_t *obj, const char *key, const char *const *values, int dflt, int *out,
                    sesh_reply *reply)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return bad(reply, key, "%s must be a string", key);
    for (int i = 0; values[i]; i++)
        if (strcasecmp(json_string_value(v), values[i]) == 0) {
            *out = i;
            return 0;
        }
    sesh_reply_error(reply, 400, "InvalidRequestBody", key, "%s '%.40s' is not one of the accepted values",
                     key, json_string_value(v));
    return -1;
}

/* A field that is there and not null. */
static json_t *present(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* The code or command line, decoded when the input type is InlineBase64. */
static int take_text(json_t *v, const char *key, int base64, exec_req *req, sesh_reply *reply)
{
    const char *src = json_string_value(v);
    size_t len = json_string_length(v);
    if (base64) {
        req->code = sesh_base64_decode(src, len, &req->code_len);
        if (!req->code)
            return bad(reply, key, "codeInputType is InlineBase64 but %s is not valid base64", key);
    } else {
        req->code = sesh_xmalloc(len + 1);
        memcpy(req->code, src, len + 1);
        req->code_len = len;
    }
    return 0;
}

/* timeoutInSeconds (default dflt) and outputStreamsMaxLength, within the pool's caps. */
static int get_limits(sesh_api *api, json_t *props, int dflt, size_t dflt_output, exec_req *req,
                      sesh_reply *reply)
{
    long long timeout = dflt, max_output;
    int has_timeout, has_max;
    if (get_int(props, "timeoutInSeconds", 1, 1000000, &timeout, &has_timeout, reply)) return -1;
    req->timeout_s = timeout > api->cfg.timeout_cap ? api->cfg.timeout_cap : (int)timeout;
    if (get_int(props, "outputStreamsMaxLength", 0, 1LL << 40, &max_output, &has_max, reply)) return -1;
    if (!has_max) max_output = (long long)dflt_output;
    req->max_output = (size_t)max_output > api->cfg.max_output ? api->cfg.max_output : (size_t)max_output;
    return has_timeout;
}

/* A shell command (pool-api.md section 9): exactly one of shellCommand and
 * execCommandAndArgs, an optional stdin, in 2025-02-02-preview and later. */
static int parse_shell(sesh_api *api, sesh_call *call, json_t *props, int input, exec_req *req,
                       sesh_reply *reply)
{
    json_t *line = present(props, "shellCommand"), *argv = present(props, "execCommandAndArgs");
    if (!line && !argv && present(props, "code"))
        return bad(reply, "code", "%s", "this pool runs shell commands (sesh-pool --container-type "
                   "Shell), not Python: send shellCommand (a command line run by bash) or "
                   "execCommandAndArgs (a program and its arguments)");
    if (!line == !argv)
        return bad(reply, "shellCommand", "%s", "give exactly one of shellCommand (a command line "
                   "run by bash) and execCommandAndArgs (a program and its arguments, no shell)");
    if (present(props, "code"))
        return bad(reply, "code", "%s", "a request runs Python (code) or a shell command "
                   "(shellCommand or execCommandAndArgs), not both");
    if (call->rank < SESH_RANK_2025_02) {
        sesh_reply_error(reply, 404, "OperationNotSupported", "api-version",
                         "a shell command needs api-version %s or later, at POST executions (this "
                         "request asked for %s)", sesh_api_version_name(SESH_RANK_2025_02),
                         call->api_version);
        return -1;
    }
    if (line && !json_is_string(line))
        return bad(reply, "shellCommand", "%s", "shellCommand must be a string");
    if (argv) {
        size_t n = json_array_size(argv);
        int strings = json_is_array(argv) && n > 0;
        for (size_t i = 0; strings && i < n; i++)
            strings = json_is_string(json_array_get(argv, i));
        if (!strings)
            return bad(reply, "execCommandAndArgs", "%s",
                       "execCommandAndArgs must be a non-empty list of strings");
        req->args = argv;
    }
    req->stdin_text = present(props, "stdin");
    if (req->stdin_text && !json_is_string(req->stdin_text))
        return bad(reply, "stdin", "%s", "stdin must be a string");
    int dflt = SESH_SHELL_TIMEOUT < api->cfg.timeout_cap ? SESH_SHELL_TIMEOUT : api->cfg.timeout_cap;
    if (get_limits(api, props, dflt, SESH_DEFAULT_STREAM_MAX, req, reply) < 0) return -1;
    return line ? take_text(line, "shellCommand", input == 1, req, reply) : 0;
}

static int parse_request(sesh_api *api, sesh_call *call, json_t *body, exec_req *req, sesh_reply *reply)
{
    static const char *const input_types[] = { "Inline", "InlineBase64", "InlineText", NULL };
    static const char *const exec_types[] = { "Synchronous", "Asynchronous", NULL };
    json_t *props = body;
    if (call->gen == 1) {
        props = json_object_get(body, "properties");
        if (!json_is_object(props))
            return bad(reply, "properties", "%s", "the body must be {\"properties\": {\"code\": ..., ...}}");
    }
    int input, exec;
    if (get_enum(props, "codeInputType", input_types, 0, &input, reply) ||
        get_enum(props, "executionType", exec_types, 0, &exec, reply))
        return -1;
    if (call->gen == 1 && exec == 1)
        return bad(reply, "executionType", "%s",
                   "asynchronous executions need a second-generation api-version (2024-10-02-preview or later)");
    req->async = exec == 1;

    req->shell = present(props, "shellCommand") || present(props, "execCommandAndArgs") ||
                 !sesh_manager_runs_python(api->m);
    if (req->shell) return parse_shell(api, call, props, input, req, reply);

    json_t *code = json_object_get(props, "code");
    if (!code) return bad(reply, "code", "%s", "the field code (the Python source) is required");
    if (!json_is_string(code)) return bad(reply, "code", "%s", "code must be a string");
    json_t *empty = json_object_get(props, "useEmptyKernel");
    if (empty && !json_is_boolean(empty))
        return bad(reply, "useEmptyKernel", "%s", "useEmptyKernel must be true or false");
    if (json_is_true(empty))
        return bad(reply, "useEmptyKernel", "%s", "useEmptyKernel is not supported: a session keeps one kernel");

    int has_timeout = get_limits(api, props, api->cfg.timeout_cap,
                                 call->gen == 2 ? SESH_DEFAULT_STREAM_MAX : api->cfg.max_output, req, reply);
    if (has_timeout < 0) return -1;
    if (!has_timeout && call->rank >= SESH_RANK_2025_10)
        return bad(reply, "timeoutInSeconds", "timeoutInSeconds is required in api-version %s",
                   sesh_api_version_name(SESH_RANK_2025_10));

    json_t *jupyter = json_object_get(props, "returnJupyterFormatExecutionResult");
    if (jupyter && !json_is_null(jupyter) && !json_is_boolean(jupyter))
        return bad(reply, "returnJupyterFormatExecutionResult", "%s", "it must be true or false");
    req->jupyter = json_is_true(jupyter);
    return take_text(code, "code", input == 1, req, reply);
}

static void append_note(json_t *obj, const char *key, const char *note, int front)
{
    const char *old = json_string_value(json_object_get(obj, key));
    if (!old) old = "";
    int sep = *old && !front && old[strlen(old) - 1] != '\n';
    char *s = front ? sesh_printf("%s%s", note, old) : sesh_printf("%s%s%s", old, sep ? "\n" : "", note);
    json_t *v = json_string(s);
    json_object_set_new(obj, key, v ? v : json_string(note));
    free(s);
}

/* The outcome as {status, stdout, stderr, result, ms}: the runner's reply
 * with what the pool has to add about timeouts, lost state and caps. */
json_t *sesh_run_outcome(const sesh_run *run)
{
    json_t *o = json_object();
    json_t *r = run->reply;
    const char *status = json_string_value(json_object_get(r, "status"));
    int ok = run->status == SESH_RUN_OK && status && strcmp(status, "Success") == 0;
    json_t *out = json_object_get(r, "stdout"), *err = json_object_get(r, "stderr");
    json_object_set_new(o, "stdout", json_is_string(out) ? json_copy(out) : json_string(""));
    json_object_set_new(o, "stderr", json_is_string(err) ? json_copy(err) : json_string(""));
    json_t *result = json_object_get(r, "result");
    json_object_set_new(o, "result", ok && result ? json_deep_copy(result) : json_null());
    json_t *ms = json_object_get(r, "ms");
    json_object_set_new(o, "ms", json_integer(json_is_integer(ms) ? json_integer_value(ms) : (json_int_t)run->run_ms));

    if (json_is_true(json_object_get(r, "stdout_truncated")))
        append_note(o, "stdout", "[sesh-pool: stdout truncated at the output limit]", 0);
    if (json_is_true(json_object_get(r, "stderr_truncated")))
        append_note(o, "stderr", "[sesh-pool: stderr truncated at the output limit]", 0);
    if (run->state_lost_before)
        append_note(o, "stderr", "[sesh-pool: the session's Python had exited since the last execution; "
                    "this code ran in a new interpreter, so earlier variables and imports are gone "
                    "(files in /mnt/data are kept)]\n", 1);
    if (run->status == SESH_RUN_TIMED_OUT) {
        char note[200];
        snprintf(note, sizeof note, "[sesh-pool: execution timed out after %d s and was interrupted; "
                 "the session and its state are kept]", run->timeout_ms / 1000);
        append_note(o, "stderr", note, 0);
    } else if (run->status == SESH_RUN_ABANDONED) {
        append_note(o, "stderr", "[sesh-pool: the client went away before the end, so the "
                    "execution was interrupted; the session and its state are kept]", 0);
    } else if (run->status == SESH_RUN_LOST) {
        char *note = sesh_printf("[sesh-pool: the session's Python was lost (%s); its state "
                                 "(variables, imports) is gone, files in /mnt/data are kept, and the "
                                 "next execution starts a new interpreter]",
                                 run->error ? run->error : "no reason given");
        append_note(o, "stderr", note, 0);
        free(note);
    }
    json_object_set_new(o, "status", json_string(ok ? "Success" : "Failure"));
    return o;
}

/* The pool's notes on a shell command's stderr, in the order a reader needs
 * them: what happened before it ran first, how it ended last. */
static void shell_notes(json_t *o, const sesh_run *run, int exit_code)
{
    json_t *r = run->reply;
    if (json_is_true(json_object_get(r, "new_shell")))
        append_note(o, "stderr", "[sesh-pool: the session's shell had ended since the last command "
                    "(an exit, or a command that would not stop); this command ran in a new shell, "
                    "without the old one's variables, functions and working directory (files are "
                    "kept)]\n", 1);
    if (run->state_lost_before)
        append_note(o, "stderr", "[sesh-pool: the session's sandbox had ended since the last "
                    "command; this command ran in a new one, in a new shell (files in /mnt/data are "
                    "kept)]\n", 1);
    int ended = json_is_true(json_object_get(r, "shell_ended"));
    char note[320];
    if (run->status == SESH_RUN_TIMED_OUT || run->status == SESH_RUN_ABANDONED) {
        char why[96] = "the client went away before the end";
        if (run->status == SESH_RUN_TIMED_OUT)
            snprintf(why, sizeof why, "the command timed out after %d s", run->timeout_ms / 1000);
        snprintf(note, sizeof note, "[sesh-pool: %s, so every process it started was killed; %s]",
                 why, ended ? "its shell would not stop and was killed too, so the next command "
                              "starts a new shell" : "the session's shell and its state are kept");
        append_note(o, "stderr", note, 0);
    } else if (run->status == SESH_RUN_LOST) {
        char *lost = sesh_printf("[sesh-pool: the session's sandbox was lost (%s); files in "
                                 "/mnt/data are kept, and the next command starts a new sandbox "
                                 "and shell]", run->error ? run->error : "no reason given");
        append_note(o, "stderr", lost, 0);
        free(lost);
    } else if (ended && exit_code >= 0) {
        snprintf(note, sizeof note, "[sesh-pool: the command ended the session's shell (exit "
                 "status %d); the next command starts a new shell]", exit_code);
        append_note(o, "stderr", note, 0);
    }
}

/* Why a shell command has no exit code of its own, as {code, message}; NULL
 * when it has one. */
static json_t *shell_error(const sesh_run *run, int has_code)
{
    char msg[200];
    const char *code = NULL;
    const char *stopped = json_string_value(json_object_get(run->reply, "stopped"));
    if (run->status == SESH_RUN_TIMED_OUT) {
        code = "ExecutionTimeout";
        snprintf(msg, sizeof msg, "the command timed out after %d s; every process it started was "
                 "killed", run->timeout_ms / 1000);
    } else if (run->status == SESH_RUN_ABANDONED) {
        code = "ExecutionAbandoned";
        snprintf(msg, sizeof msg, "the client went away before the end, so every process the "
                 "command started was killed");
    } else if (run->status == SESH_RUN_LOST) {
        code = "SessionStateLost";
        snprintf(msg, sizeof msg, "the session's sandbox was lost; files in /mnt/data are kept");
    } else if (stopped) {
        code = "ExecutionStopped";
        snprintf(msg, sizeof msg, "the command was stopped: %.160s", stopped);
    } else if (!has_code) {
        code = "CommandStartError";
        snprintf(msg, sizeof msg, "the command could not run to its end; stderr says why");
    }
    return code ? json_pack("{s:s, s:s}", "code", code, "message", msg) : NULL;
}

json_t *sesh_shell_outcome(const sesh_run *run)
{
    json_t *o = json_object();
    json_t *r = run->reply;
    json_t *out = json_object_get(r, "stdout"), *err = json_object_get(r, "stderr");
    json_object_set_new(o, "stdout", json_is_string(out) ? json_copy(out) : json_string(""));
    json_object_set_new(o, "stderr", json_is_string(err) ? json_copy(err) : json_string(""));
    json_t *ms = json_object_get(r, "ms");
    json_object_set_new(o, "ms", json_integer(json_is_integer(ms) ? json_integer_value(ms) : (json_int_t)run->run_ms));
    json_t *code = json_object_get(r, "exit_code");
    int has_code = run->status == SESH_RUN_OK && json_is_integer(code);
    int exit_code = has_code ? (int)json_integer_value(code) : -1;
    if (json_is_true(json_object_get(r, "stdout_truncated")))
        append_note(o, "stdout", "[sesh-pool: stdout truncated at the output limit]", 0);
    if (json_is_true(json_object_get(r, "stderr_truncated")))
        append_note(o, "stderr", "[sesh-pool: stderr truncated at the output limit]", 0);
    shell_notes(o, run, exit_code);
    json_object_set_new(o, "exitCode", json_integer(exit_code));
    json_t *e = shell_error(run, has_code);
    if (e) json_object_set_new(o, "error", e);
    return o;
}

static json_t *error_of(const sesh_run *run)
{
    const char *code = NULL, *msg = NULL;
    char buf[200];
    if (!run->started) {
        code = "SessionStartFailed";
        msg = run->error ? run->error : "the sandbox did not start";
    } else if (run->status == SESH_RUN_TIMED_OUT) {
        code = "ExecutionTimedOut";
        snprintf(buf, sizeof buf, "the execution timed out after %d s and was interrupted; the session's state is kept",
                 run->timeout_ms / 1000);
        msg = buf;
    } else if (run->status == SESH_RUN_ABANDONED) {
        code = "ExecutionAbandoned";
        msg = "the client went away before the end, so the execution was interrupted; the session's "
              "state is kept";
    } else if (run->status == SESH_RUN_LOST) {
        code = "SessionStateLost";
        msg = "the session's Python was lost and its state with it; files in /mnt/data are kept";
    }
    if (!code) return NULL;
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (!e) e = json_pack("{s:s, s:s}", "code", code, "message", "see stderr");
    return e;
}

/* A shell command's execution resource (pool-api.md section 9): its exit
 * code, as a string, for a status. */
static void shell_resource(json_t *j, const sesh_run *run)
{
    if (!run->started) {
        json_object_set_new(j, "status", json_string("-1"));
        json_object_set_new(j, "error", json_pack("{s:s, s:s}", "code", "SessionStartFailed", "message",
                                                  run->error ? run->error : "the sandbox did not start"));
        return;
    }
    json_t *o = sesh_shell_outcome(run);
    char status[16];
    snprintf(status, sizeof status, "%lld", (long long)json_integer_value(json_object_get(o, "exitCode")));
    json_object_set_new(j, "status", json_string(status));
    json_object_set_new(j, "result", json_pack("{s:O, s:O, s:O}", "stdout", json_object_get(o, "stdout"),
                                               "stderr", json_object_get(o, "stderr"),
                                               "executionTimeInMilliseconds", json_object_get(o, "ms")));
    json_t *e = json_object_get(o, "error");
    if (e) json_object_set(j, "error", e);
    json_decref(o);
}

/* The second generation's execution resource; run NULL while it runs. */
static json_t *resource(const sesh_call *call, const char *id, int async, const sesh_run *run)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "id", id, "identifier", call->identifier,
                          "executionType", async ? "Asynchronous" : "Synchronous");
    if (!run) {
        json_object_set_new(j, "status", json_string("Running"));
        return j;
    }
    if (run->shell) {
        shell_resource(j, run);
        return j;
    }
    json_t *err = error_of(run);
    if (run->started) {
        json_t *o = sesh_run_outcome(run);
        json_object_set_new(j, "status", json_string(strcmp(json_string_value(json_object_get(o, "status")),
                                                            "Success") == 0 ? "Succeeded" : "Failed"));
        json_object_set_new(j, "result", json_pack("{s:O, s:O, s:O, s:O}",
                                                   "stdout", json_object_get(o, "stdout"),
                                                   "stderr", json_object_get(o, "stderr"),
                                                   "executionResult", json_object_get(o, "result"),
                                                   "executionTimeInMilliseconds", json_object_get(o, "ms")));
        json_decref(o);
    } else {
        json_object_set_new(j, "status", json_string("Failed"));
    }
    if (err) json_object_set_new(j, "error", err);
    return j;
}

static void timing_headers(sesh_call *call, const sesh_run *run, sesh_reply *reply)
{
    uint64_t service = sesh_now_ms() - call->t_start_ms;
    sesh_reply_header(reply, "X-Ms-Session-Guid", "%s", sesh_session_guid(call->session));
    sesh_reply_header(reply, "X-Ms-New-Allocation", "%s",
                      call->session_created || run->new_allocation ? "True" : "False");
    sesh_reply_header(reply, "X-Ms-Allocation-Time", "%llu", (unsigned long long)run->alloc_ms);
    sesh_reply_header(reply, "X-Ms-Allocation-Retries", "%d", run->allocation_retries);
    sesh_reply_header(reply, "X-Ms-Preparation-Time", "%llu", (unsigned long long)run->wait_ms);
    sesh_reply_header(reply, "X-Ms-Container-Execution-Duration", "%llu", (unsigned long long)run->run_ms);
    sesh_reply_header(reply, "X-Ms-Overall-Execution-Time", "%llu", (unsigned long long)run->total_ms);
    sesh_reply_header(reply, "X-Ms-Execution-Request-Time", "%llu", (unsigned long long)run->total_ms);
    sesh_reply_header(reply, "X-Ms-Total-Execution-Service-Time", "%llu", (unsigned long long)service);
}

static int valid_operation_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static void location_headers(sesh_call *call, const char *id, sesh_reply *reply)
{
    char *enc = sesh_url_encode(id);
    char *op = sesh_printf("executions/%s", enc);
    char *url = sesh_api_url(call, op, NULL);
    sesh_reply_header(reply, "operation-id", "%s", id);
    sesh_reply_header(reply, "Operation-Location", "%s", url);
    free(url);
    free(op);
    free(enc);
}

static void noop(const sesh_execution *e, void *ud) { (void)e; (void)ud; }

/* The runner's request (runner.py): execute or shell. Frees req->code; NULL
 * with the error in reply. */
static json_t *runner_request(exec_req *req, sesh_reply *reply)
{
    json_t *text = req->code ? json_stringn(req->code, req->code_len) : NULL;
    free(req->code);
    req->code = NULL;
    const char *key = req->shell ? "shellCommand" : "code";
    if (!text && !req->args) {
        sesh_reply_error(reply, 400, "InvalidRequestBody", key, "the decoded %s is not UTF-8 text", key);
        return NULL;
    }
    if (!req->shell)
        return json_pack("{s:s, s:o, s:I, s:b}", "op", "execute", "code", text,
                         "max_output", (json_int_t)req->max_output, "jupyter", req->jupyter);
    json_t *rq = json_pack("{s:s, s:I}", "op", "shell", "max_output", (json_int_t)req->max_output);
    if (text) json_object_set_new(rq, "command", text);
    else json_object_set(rq, "args", req->args);
    if (req->stdin_text) json_object_set(rq, "stdin", req->stdin_text);
    return rq;
}

void sesh_op_execute(sesh_api *api, sesh_call *call, const char *body, size_t len, sesh_reply *reply)
{
    json_error_t jerr;
    call->json = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!call->json) {
        sesh_reply_error(reply, 400, "InvalidRequestBody", NULL, "the body is not valid JSON: %s (at byte %d)",
                         jerr.text, jerr.position);
        return;
    }
    if (!json_is_object(call->json)) {
        sesh_reply_error(reply, 400, "InvalidRequestBody", NULL, "the body must be a JSON object");
        return;
    }
    exec_req req = { 0 };
    if (parse_request(api, call, call->json, &req, reply) != 0) return;

    char id[129] = "";
    if (call->gen == 2) {
        if (call->operation_id && !valid_operation_id(call->operation_id)) {
            sesh_reply_error(reply, 400, "InvalidOperationId", "operation-id",
                             "the operation-id header must be 1 to 128 letters, digits, '-', '_' or '.'");
            free(req.code);
            return;
        }
        if (call->operation_id) snprintf(id, sizeof id, "%s", call->operation_id);
        else sesh_uuid(id);
    }
    if (sesh_api_session(api, call, 1, reply) != 0) {
        free(req.code);
        return;
    }
    if (call->gen == 2 && call->operation_id &&
        sesh_session_with_execution(call->session, id, noop, NULL) == 0) {
        sesh_reply_error(reply, 409, "ExecutionAlreadyExists", "operation-id",
                         "this session already has an execution with operation-id '%s'", id);
        free(req.code);
        return;
    }
    json_t *rq = runner_request(&req, reply);
    if (!rq) return;
    int timeout_ms = req.timeout_s * 1000;

    if (req.async) {
        sesh_sess_status st = sesh_session_execute_async(call->session, rq, timeout_ms, id);
        json_decref(rq);
        if (st != SESH_SESS_OK) {
            sesh_api_session_error(api, reply, st, NULL);
            return;
        }
        location_headers(call, id, reply);
        sesh_reply_json(reply, 200, resource(call, id, 1, NULL));
        return;
    }

    sesh_run run;
    sesh_sess_status st = sesh_session_execute(call->session, rq, timeout_ms, call->gen == 2 ? id : NULL,
                                               call->client, &run);
    json_decref(rq);
    if (st != SESH_SESS_OK) {
        sesh_api_session_error(api, reply, st, NULL);
        return;
    }
    if (!run.started) {
        sesh_reply_error(reply, 500, "SessionStartFailed", NULL, "cannot start the session's sandbox: %s",
                         run.error ? run.error : "unknown error");
        sesh_run_clear(&run);
        return;
    }
    if (call->gen == 1) {
        json_t *o = sesh_run_outcome(&run);
        json_t *props = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O}", "$id", "2",
                                  "status", json_object_get(o, "status"),
                                  "stdout", json_object_get(o, "stdout"),
                                  "stderr", json_object_get(o, "stderr"),
                                  "result", json_object_get(o, "result"),
                                  "executionTimeInMilliseconds", json_object_get(o, "ms"));
        json_decref(o);
        sesh_reply_json(reply, 200, json_pack("{s:s, s:o}", "$id", "1", "properties", props));
    } else {
        location_headers(call, id, reply);
        sesh_reply_json(reply, 200, resource(call, id, 0, &run));
    }
    timing_headers(call, &run, reply);
    sesh_run_clear(&run);
}

typedef struct lookup {
    const sesh_call *call;
    json_t *out;
    int dropped;
} lookup;

static void format_record(const sesh_execution *e, void *ud)
{
    lookup *l = ud;
    l->dropped = e->dropped;
    if (!e->dropped)
        l->out = resource(l->call, e->id, e->async, e->done ? &e->run : NULL);
}

void sesh_op_exec_get(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    if (sesh_api_session(api, call, 0, reply) != 0) return;
    lookup l = { call, NULL, 0 };
    if (sesh_session_with_execution(call->session, call->name, format_record, &l) != 0) {
        sesh_reply_error(reply, 404, "ExecutionNotFound", "executionId",
                         "this session has no execution '%.128s'", call->name);
        return;
    }
    if (l.dropped) {
        sesh_reply_error(reply, 410, "ExecutionOutputDropped", "executionId",
                         "execution '%.128s' has finished, but its output is no longer kept: the "
                         "pool keeps the output of past executions up to %u MiB per session and "
                         "%u MiB in all, and drops the oldest first (output already read first)",
                         call->name, SESH_KEPT_SESSION_BYTES >> 20, SESH_KEPT_POOL_BYTES >> 20);
        return;
    }
    sesh_reply_json(reply, 200, l.out);
}
