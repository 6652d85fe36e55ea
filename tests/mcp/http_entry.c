/*
 * http_entry.c — the MCP server's HTTP behaviour through its entry point
 * (sesh_mcp_http, host/pool/mcp.h), with a real session manager: the key,
 * Origin, methods, media types, protocol versions, MCP sessions and their
 * ids, 202 for notifications, JSON-RPC errors, batches, and environments
 * deleted when their MCP session ends (real sandboxes and Python).
 *
 * Built and run by tests/mcp/run.sh; prints "N passed, N failed".
 */
#include "pool/mcp.h"
#include "pool/sessions.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KEY "mcp-test-key-0123456789"

static sesh_manager *manager;
static sesh_mcp *mcp;
static int passed, failed, test_failed;

#define CHECK(cond) check((cond), #cond, __LINE__)

static void check(int ok, const char *what, int line)
{
    if (!ok) {
        printf("   failed at line %d: %s\n", line, what);
        test_failed = 1;
    }
}

static void run_test(const char *name, void (*fn)(void))
{
    test_failed = 0;
    fn();
    printf("%s %s\n", test_failed ? "not ok" : "ok", name);
    if (test_failed) failed++; else passed++;
}

/* ---- requests ---- */

typedef struct req {
    const char *method, *key, *auth, *origin, *session, *version, *accept, *type, *body;
} req;

static sesh_reply send_req(req r)
{
    sesh_reply reply;
    sesh_reply_init(&reply);
    sesh_mcp_http_request rq = {
        .method = r.method ? r.method : "POST", .api_key = r.key, .authorization = r.auth,
        .origin = r.origin, .session_id = r.session, .protocol_version = r.version,
        .accept = r.accept, .content_type = r.type, .body = r.body,
        .body_len = r.body ? strlen(r.body) : 0,
    };
    sesh_mcp_http(mcp, &rq, &reply);
    return reply;
}

/* A POST with the key and the usual headers. */
static sesh_reply post(const char *session, const char *body)
{
    return send_req((req){ .key = KEY, .session = session, .body = body,
                           .accept = "application/json, text/event-stream",
                           .type = "application/json" });
}

static const char *header(const sesh_reply *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

static long long error_code(const sesh_reply *r)
{
    return json_integer_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static json_t *result_of(const sesh_reply *r) { return json_object_get(r->json, "result"); }

static json_t *structured(const sesh_reply *r)
{
    return json_object_get(result_of(r), "structuredContent");
}

static char *body(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    return s;
}

#define INIT "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"," \
             "\"capabilities\":{},\"clientInfo\":{\"name\":\"entry-test\",\"version\":\"1\"}}}"
#define LIST "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}"

/* Starts an MCP session; its id (malloc'd). */
static char *open_session(void)
{
    sesh_reply r = post(NULL, INIT);
    const char *id = header(&r, "Mcp-Session-Id");
    char *copy = id ? strdup(id) : NULL;
    sesh_reply_free(&r);
    return copy;
}

static char *launch(const char *session)
{
    sesh_reply r = post(session, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"launchShell\",\"arguments\":{}}}");
    const char *id = json_string_value(json_object_get(structured(&r), "environmentId"));
    char *copy = id ? strdup(id) : NULL;
    sesh_reply_free(&r);
    return copy;
}

static sesh_reply run_python(const char *session, const char *env, const char *code)
{
    char *b = body("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"runPythonCodeInRemoteEnvironment\",\"arguments\":{\"environmentId\":\"%s\","
                   "\"pythonCode\":\"%s\"}}}", env, code);
    sesh_reply r = post(session, b);
    free(b);
    return r;
}

/* ---- the tests ---- */

static void test_key(void)
{
    sesh_reply r = send_req((req){ .body = LIST });
    CHECK(r.status == 401);
    CHECK(error_code(&r) == -32000);
    CHECK(result_of(&r) == NULL);
    sesh_reply_free(&r);
    r = send_req((req){ .key = "wrong-key", .body = LIST });
    CHECK(r.status == 401);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY "x", .body = LIST });
    CHECK(r.status == 401);
    sesh_reply_free(&r);
    r = send_req((req){ .auth = "Bearer wrong", .body = LIST });
    CHECK(r.status == 401);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .body = LIST });
    CHECK(r.status == 200);
    CHECK(json_is_array(json_object_get(result_of(&r), "tools")));
    sesh_reply_free(&r);
    r = send_req((req){ .auth = "Bearer " KEY, .body = LIST });
    CHECK(r.status == 200);
    sesh_reply_free(&r);
}

static void test_origin(void)
{
    static const char *const refused[] = {
        "https://evil.example", "http://localhost.evil.example", "null", "http://127.0.0.1.evil.example",
        "http://localhost:80/path", "http://[::2]", "ftp://localhost", "http://10.0.0.1:8000", NULL };
    static const char *const allowed[] = {
        "http://localhost", "http://localhost:3000", "http://127.0.0.1", "https://127.1.2.3:8443",
        "http://[::1]:8080", "https://app.example", "HTTPS://APP.EXAMPLE", NULL };
    for (int i = 0; refused[i]; i++) {
        sesh_reply r = send_req((req){ .key = KEY, .origin = refused[i], .body = LIST });
        CHECK(r.status == 403);
        if (r.status != 403) printf("   (origin %s passed)\n", refused[i]);
        sesh_reply_free(&r);
    }
    for (int i = 0; allowed[i]; i++) {
        sesh_reply r = send_req((req){ .key = KEY, .origin = allowed[i], .body = LIST });
        CHECK(r.status == 200);
        if (r.status != 200) printf("   (origin %s refused)\n", allowed[i]);
        sesh_reply_free(&r);
    }
    /* the Origin is judged before the key: a page learns nothing */
    sesh_reply r = send_req((req){ .origin = "https://evil.example", .body = LIST });
    CHECK(r.status == 403);
    sesh_reply_free(&r);
}

static void test_methods(void)
{
    static const char *const methods[] = { "GET", "PUT", "PATCH", "HEAD", NULL };
    for (int i = 0; methods[i]; i++) {
        sesh_reply r = send_req((req){ .method = methods[i], .key = KEY, .accept = "text/event-stream" });
        CHECK(r.status == 405);
        CHECK(header(&r, "Allow") && strcmp(header(&r, "Allow"), "POST, DELETE") == 0);
        sesh_reply_free(&r);
    }
    sesh_reply r = send_req((req){ .method = "GET" });
    CHECK(r.status == 401);             /* strangers are told nothing */
    sesh_reply_free(&r);
}

static void test_initialize(void)
{
    sesh_reply r = post(NULL, INIT);
    CHECK(r.status == 200);
    const char *sid = header(&r, "Mcp-Session-Id");
    CHECK(sid && strlen(sid) == 32);
    json_t *res = result_of(&r);
    CHECK(strcmp(json_string_value(json_object_get(res, "protocolVersion")), "2025-06-18") == 0);
    CHECK(json_is_object(json_object_get(json_object_get(res, "capabilities"), "tools")));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(res, "serverInfo"), "name")), "sesh-pool") == 0);
    CHECK(json_integer_value(json_object_get(r.json, "id")) == 1);
    char *first = sid ? strdup(sid) : NULL;
    sesh_reply_free(&r);

    /* Azure's tutorial: a string id and no params: the newest version */
    r = send_req((req){ .key = KEY, .type = "application/json",
                        .body = "{ \"jsonrpc\": \"2.0\", \"id\": \"1\", \"method\": \"initialize\" }" });
    CHECK(r.status == 200);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "id")), "1") == 0);
    CHECK(strcmp(json_string_value(json_object_get(result_of(&r), "protocolVersion")), "2025-06-18") == 0);
    CHECK(header(&r, "Mcp-Session-Id") && first && strcmp(header(&r, "Mcp-Session-Id"), first) != 0);
    sesh_reply_free(&r);

    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-03-26\"}}");
    CHECK(strcmp(json_string_value(json_object_get(result_of(&r), "protocolVersion")), "2025-03-26") == 0);
    CHECK(json_object_get(json_object_get(result_of(&r), "serverInfo"), "title") == NULL);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2024-11-05\"}}");
    CHECK(strcmp(json_string_value(json_object_get(result_of(&r), "protocolVersion")), "2025-06-18") == 0);
    sesh_reply_free(&r);

    /* a failed initialize starts no session */
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":7}}");
    CHECK(r.status == 200);
    CHECK(error_code(&r) == -32602);
    CHECK(header(&r, "Mcp-Session-Id") == NULL);
    sesh_reply_free(&r);

    /* initialize inside a session is refused: it would start another */
    r = post(first, INIT);
    CHECK(r.status == 400);
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    free(first);
}

static void test_notifications(void)
{
    char *sid = open_session();
    sesh_reply r = post(sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    CHECK(r.status == 202);
    CHECK(r.json == NULL && r.text == NULL);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9}}");
    CHECK(r.status == 202);
    CHECK(r.json == NULL);
    sesh_reply_free(&r);
    /* a response from the client (we never ask, but it is no error) */
    r = post(sid, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
    CHECK(r.status == 202);
    sesh_reply_free(&r);
    free(sid);
}

static void test_sessions(void)
{
    char *sid = open_session();
    CHECK(sid != NULL);
    sesh_reply r = post(sid, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    CHECK(r.status == 200);
    CHECK(json_is_object(result_of(&r)) && json_object_size(result_of(&r)) == 0);
    sesh_reply_free(&r);

    r = post("0123456789abcdef0123456789abcdef", "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    CHECK(r.status == 404);
    CHECK(error_code(&r) == -32001);
    sesh_reply_free(&r);

    r = send_req((req){ .method = "DELETE", .key = KEY, .session = "no-such-session" });
    CHECK(r.status == 404);
    sesh_reply_free(&r);
    r = send_req((req){ .method = "DELETE", .key = KEY });
    CHECK(r.status == 400);
    sesh_reply_free(&r);
    r = send_req((req){ .method = "DELETE", .session = sid });
    CHECK(r.status == 401);
    sesh_reply_free(&r);
    r = send_req((req){ .method = "DELETE", .key = KEY, .session = sid });
    CHECK(r.status == 200);
    CHECK(r.json == NULL);
    sesh_reply_free(&r);
    r = post(sid, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    CHECK(r.status == 404);
    sesh_reply_free(&r);
    r = send_req((req){ .method = "DELETE", .key = KEY, .session = sid });
    CHECK(r.status == 404);
    sesh_reply_free(&r);
    free(sid);
}

static void test_tools_list(void)
{
    static const char *const names[] = { "launchShell", "runPythonCodeInRemoteEnvironment",
        "runShellCommandInRemoteEnvironment", "uploadFile", "downloadFile", "listFiles",
        "closeEnvironment", NULL };
    sesh_reply r = post(NULL, LIST);           /* stateless: no session id */
    CHECK(r.status == 200);
    json_t *tools = json_object_get(result_of(&r), "tools");
    CHECK(json_array_size(tools) == 7);
    for (size_t i = 0; names[i] && i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        CHECK(strcmp(json_string_value(json_object_get(t, "name")), names[i]) == 0);
        json_t *in = json_object_get(t, "inputSchema"), *out = json_object_get(t, "outputSchema");
        CHECK(strcmp(json_string_value(json_object_get(in, "type")), "object") == 0);
        CHECK(strcmp(json_string_value(json_object_get(out, "type")), "object") == 0);
        CHECK(json_is_string(json_object_get(t, "description")));
    }
    json_t *py = json_array_get(tools, 1);
    json_t *req_list = json_object_get(json_object_get(py, "inputSchema"), "required");
    CHECK(json_array_size(req_list) == 2);
    CHECK(strcmp(json_string_value(json_array_get(req_list, 0)), "environmentId") == 0);
    CHECK(strcmp(json_string_value(json_array_get(req_list, 1)), "pythonCode") == 0);
    sesh_reply_free(&r);
}

static void test_rpc_errors(void)
{
    sesh_reply r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,");
    CHECK(r.status == 400);
    CHECK(error_code(&r) == -32700);
    CHECK(json_is_null(json_object_get(r.json, "id")));
    sesh_reply_free(&r);
    r = post(NULL, "[1, 2");
    CHECK(error_code(&r) == -32700);
    sesh_reply_free(&r);
    r = post(NULL, "\"hello\"");
    CHECK(r.status == 400);
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"ping\"}");
    CHECK(error_code(&r) == -32600);
    CHECK(json_integer_value(json_object_get(r.json, "id")) == 3);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}");
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/list\"}");
    CHECK(r.status == 200);
    CHECK(error_code(&r) == -32601);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"rm_rf\"}}");
    CHECK(error_code(&r) == -32602);
    CHECK(strstr(json_string_value(json_object_get(json_object_get(r.json, "error"), "message")), "rm_rf") != NULL);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"runPythonCodeInRemoteEnvironment\",\"arguments\":{\"environmentId\":\"x\"}}}");
    CHECK(error_code(&r) == -32602);
    CHECK(strstr(json_string_value(json_object_get(json_object_get(r.json, "error"), "message")), "pythonCode") != NULL);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"uploadFile\",\"arguments\":{\"environmentId\":\"x\",\"path\":\"a\",\"content\":5}}}");
    CHECK(error_code(&r) == -32602);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"launchShell\",\"arguments\":[1]}}");
    CHECK(error_code(&r) == -32602);
    sesh_reply_free(&r);
    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\",\"params\":[]}");
    CHECK(error_code(&r) == -32602);
    sesh_reply_free(&r);
    /* an environment that was never launched is the model's business: a tool error */
    r = run_python(NULL, "9b2e1c7a-0000-4000-8000-000000000000", "1");
    CHECK(r.status == 200);
    CHECK(json_is_true(json_object_get(result_of(&r), "isError")));
    CHECK(sesh_manager_count(manager) == 0);
    sesh_reply_free(&r);
}

static void test_versions(void)
{
    sesh_reply r = send_req((req){ .key = KEY, .version = "2024-11-05", .body = LIST });
    CHECK(r.status == 400);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .version = "2025-06-18", .body = LIST });
    CHECK(r.status == 200);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .version = "2025-03-26", .body = LIST });
    CHECK(r.status == 200);
    sesh_reply_free(&r);

    /* batches: 2025-03-26 only (also what a request without the header speaks) */
    const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"nothing\"}]";
    r = send_req((req){ .key = KEY, .body = batch });
    CHECK(r.status == 200);
    CHECK(json_array_size(r.json) == 2);
    CHECK(json_integer_value(json_object_get(json_array_get(r.json, 0), "id")) == 1);
    CHECK(error_code(&(sesh_reply){ .json = json_array_get(r.json, 1) }) == -32601);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .version = "2025-06-18", .body = batch });
    CHECK(r.status == 400);
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .body = "[]" });
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .body = "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]" });
    CHECK(r.status == 202);
    sesh_reply_free(&r);
    /* a session speaks what it negotiated */
    char *sid = open_session();
    r = send_req((req){ .key = KEY, .session = sid, .body = batch });
    CHECK(error_code(&r) == -32600);
    sesh_reply_free(&r);
    free(sid);
}

static void test_media_types(void)
{
    sesh_reply r = send_req((req){ .key = KEY, .type = "text/plain", .body = LIST });
    CHECK(r.status == 415);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .accept = "text/event-stream", .body = LIST });
    CHECK(r.status == 406);
    sesh_reply_free(&r);
    r = send_req((req){ .key = KEY, .accept = "*/*", .type = "application/json; charset=utf-8", .body = LIST });
    CHECK(r.status == 200);
    sesh_reply_free(&r);
}

static void test_environments_end_with_session(void)
{
    char *sid = open_session();
    char *mine = launch(sid), *other = launch(NULL);
    CHECK(mine && other);
    if (!mine || !other) return;
    sesh_reply r = run_python(sid, mine, "x = 6 * 7; x");
    CHECK(json_integer_value(json_object_get(structured(&r), "result")) == 42);
    sesh_reply_free(&r);
    r = run_python(NULL, other, "open('kept.txt', 'w').write('yes')");
    CHECK(strcmp(json_string_value(json_object_get(structured(&r), "status")), "Success") == 0);
    sesh_reply_free(&r);
    CHECK(sesh_manager_count(manager) == 2);

    r = send_req((req){ .method = "DELETE", .key = KEY, .session = sid });
    CHECK(r.status == 200);
    sesh_reply_free(&r);
    CHECK(sesh_manager_count(manager) == 1);      /* the stateless one stays */
    r = run_python(NULL, mine, "x");
    CHECK(json_is_true(json_object_get(result_of(&r), "isError")));
    sesh_reply_free(&r);

    r = post(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"closeEnvironment\",\"arguments\":{\"environmentId\":\"never-launched\"}}}");
    CHECK(json_is_true(json_object_get(result_of(&r), "isError")));
    sesh_reply_free(&r);
    char *b = body("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                   "\"closeEnvironment\",\"arguments\":{\"environmentId\":\"%s\"}}}", other);
    r = post(NULL, b);
    CHECK(json_is_true(json_object_get(structured(&r), "closed")));
    sesh_reply_free(&r);
    CHECK(sesh_manager_count(manager) == 0);
    r = post(NULL, b);
    CHECK(json_is_true(json_object_get(result_of(&r), "isError")));
    sesh_reply_free(&r);
    free(b);
    free(mine);
    free(other);
    free(sid);
}

int main(void)
{
    char templ[] = "/tmp/mcp-entry.XXXXXX";
    const char *base = getenv("SESH_TEST_TMP");
    char *dir = base ? body("%s/mcp-entry.XXXXXX", base) : strdup(templ);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sesh_manager_config mc = { .work_dir = dir, .ready = 0, .cooldown = 300, .max_sessions = 8,
                               .max_queue = 4 };
    mc.sandbox.python = "/usr/bin/python3";
    char *err = NULL;
    manager = sesh_manager_new(&mc, &err);
    if (!manager) {
        printf("cannot start the session manager: %s\n0 passed, 1 failed\n", err);
        return 1;
    }
    const char *origins[] = { "https://app.example", NULL };
    sesh_mcp_config cfg = { .manager = manager, .key = KEY, .allowed_origins = origins,
                            .timeout = 60, .max_output = 20000, .max_file = 1 << 20,
                            .cooldown = 300, .max_environments = 8 };
    mcp = sesh_mcp_new(&cfg);

    run_test("a request without the MCP key is 401; x-ms-apikey or Bearer with it pass", test_key);
    run_test("an Origin that is not loopback is 403 unless allowed", test_origin);
    run_test("GET and other methods are 405 with Allow: POST, DELETE", test_methods);
    run_test("initialize gives an Mcp-Session-Id and negotiates 2025-06-18 or 2025-03-26", test_initialize);
    run_test("notifications and responses are answered 202 without a body", test_notifications);
    run_test("a session id is honoured, an unknown one is 404, DELETE ends it", test_sessions);
    run_test("tools/list, statelessly: seven tools with input and output schemas", test_tools_list);
    run_test("JSON-RPC errors: parse, invalid request, method not found, invalid params", test_rpc_errors);
    run_test("MCP-Protocol-Version is checked; batches only in 2025-03-26", test_versions);
    run_test("media types: a JSON body, an answer the client accepts", test_media_types);
    run_test("environments end with the MCP session that launched them (real sandboxes)",
             test_environments_end_with_session);

    sesh_mcp_free(mcp);
    sesh_manager_stop(manager);
    sesh_manager_free(manager);
    rmdir(dir);
    free(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
