#!/usr/bin/python3
"""openai_stub.py: a scripted OpenAI-compatible chat-completions server for tests.

It stands in for an LLM API, which cannot run here. It speaks the documented
protocol (POST .../chat/completions, JSON in and out, tool calls, the
{"error": {"message", "type", "param", "code"}} error bodies with 401, 400, 429
and 500, Retry-After on 429) and replays a scripted conversation: each request
it accepts consumes the next step of the script. Every request is recorded, one
JSON object a line, so a spec can assert exactly what its client sent.

    /usr/bin/python3 openai_stub.py --script steps.json --record requests.jsonl

The script is a JSON object:

    {"api_key": "sk-test",                   # required Bearer key (omit: no auth)
     "azure": {"deployment": "gpt-4o",       # also serve the Azure OpenAI route
               "api_key": "az-key", "token": "entra-token",
               "entra": {"client_id": "c", "client_secret": "s"}},
                                             # and Entra's token endpoint
                                             # (POST /{tenant}/oauth2/v2.0/token),
                                             # which hands out "token"
     "steps": [
       {"reply": {"content": "text", "tool_calls": [
            {"id": "call_1", "name": "Python_REPL", "arguments": "{...}"}]}},
       {"error": 429, "retry_after": 1},     # also 401, 500, 503
       {"status": 200, "raw": "not json"}     # a broken answer, sent as is
     ]}

On start it prints one line and flushes:
    openai_stub: listening on http://127.0.0.1:PORT pid PID
It exits on SIGTERM, or after --idle-exit seconds without a request.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROLES = {"system", "developer", "user", "assistant", "tool"}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# The error bodies the OpenAI API documents for each status.
ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
MESSAGES = {
    401: "Incorrect API key provided. You can find your API key at "
         "https://platform.openai.com/account/api-keys.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


class BadRequest(Exception):
    """A request the real API would refuse with 400 invalid_request_error."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


def error_body(status, message=None, param=None, code=None, etype=None):
    default_type, default_code = ERRORS.get(status, ("server_error", None))
    return {"error": {
        "message": message or MESSAGES.get(status, "error"),
        "type": etype or default_type,
        "param": param,
        "code": code if code is not None else default_code,
    }}


def check_tools(tools):
    if not isinstance(tools, list) or not tools:
        raise BadRequest("'tools' must be a non-empty array when present", "tools")
    for i, t in enumerate(tools):
        where = "tools[%d]" % i
        if not isinstance(t, dict) or t.get("type") != "function":
            raise BadRequest("%s.type must be 'function'" % where, where + ".type")
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise BadRequest("%s.function is required" % where, where + ".function")
        if not isinstance(fn.get("name"), str) or not TOOL_NAME.match(fn["name"]):
            raise BadRequest("Invalid '%s.function.name': string does not match "
                             "pattern '^[a-zA-Z0-9_-]+$'." % where, where + ".function.name")
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            raise BadRequest("Invalid schema for function '%s': schema must be a JSON "
                             "Schema of 'type: \"object\"'." % fn["name"],
                             where + ".function.parameters")
        req = (params or {}).get("required")
        if req is not None and not isinstance(req, list):
            raise BadRequest("Invalid schema for function '%s': 'required' is not of "
                             "type 'array'." % fn["name"], where + ".function.parameters")


def check_messages(messages):
    """The checks the real API makes on the shape of a conversation."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", "messages")
    pending = set()   # tool_call ids of the last assistant message still unanswered
    for i, m in enumerate(messages):
        where = "messages[%d]" % i
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest("Invalid value for '%s.role'." % where, where + ".role")
        role = m["role"]
        if role != "tool" and pending:
            raise BadRequest("An assistant message with 'tool_calls' must be followed by "
                             "tool messages responding to each 'tool_call_id'. The following "
                             "tool_call_ids did not have response messages: "
                             + ", ".join(sorted(pending)), where + ".role")
        if role == "tool":
            tid = m.get("tool_call_id")
            if tid not in pending:
                raise BadRequest("Invalid parameter: messages with role 'tool' must be a "
                                 "response to a preceeding message with 'tool_calls'.",
                                 where + ".role")
            if not isinstance(m.get("content"), str):
                raise BadRequest("Invalid type for '%s.content': expected a string." % where,
                                 where + ".content")
            pending.discard(tid)
        elif role == "assistant":
            calls = m.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    raise BadRequest("Empty array. Expected an array with minimum length 1.",
                                     where + ".tool_calls")
                for c in calls:
                    fn = c.get("function") if isinstance(c, dict) else None
                    if (not isinstance(c, dict) or c.get("type") != "function"
                            or not isinstance(c.get("id"), str) or not isinstance(fn, dict)
                            or not isinstance(fn.get("name"), str)
                            or not isinstance(fn.get("arguments"), str)):
                        raise BadRequest("Invalid value for '%s.tool_calls'." % where,
                                         where + ".tool_calls")
                    pending.add(c["id"])
            elif not isinstance(m.get("content"), str):
                raise BadRequest("Invalid value for '%s.content': expected a string." % where,
                                 where + ".content")
        elif not isinstance(m.get("content"), (str, list)):
            raise BadRequest("Invalid type for '%s.content': expected one of a string or "
                             "array of objects." % where, where + ".content")
    if pending:
        raise BadRequest("An assistant message with 'tool_calls' must be followed by tool "
                         "messages responding to each 'tool_call_id'. The following "
                         "tool_call_ids did not have response messages: "
                         + ", ".join(sorted(pending)), "messages")


class Stub:
    def __init__(self, script, record_path):
        self.api_key = script.get("api_key")
        self.azure = script.get("azure")
        self.steps = list(script.get("steps", []))
        self.record_path = record_path
        self.lock = threading.Lock()
        self.served = 0
        self.last_request = time.monotonic()

    def record(self, entry):
        with self.lock, open(self.record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def next_step(self):
        with self.lock:
            if self.served >= len(self.steps):
                return None
            step = self.steps[self.served]
            self.served += 1
            return step


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai_stub/1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", "req_stub_%d" % int(time.time() * 1000))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply_only(405)

    def do_PUT(self):
        self.reply_only(405)

    def do_DELETE(self):
        self.reply_only(405)

    def reply_only(self, status):
        self.drain()
        self.send_json(status, error_body(400, "Method not allowed"))

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def route(self, url):
        """'openai' or 'azure' for a chat-completions path, else None."""
        path = url.path.rstrip("/")
        m = re.fullmatch(r".*/openai/deployments/([^/]+)/chat/completions", path)
        if m:
            return "azure", m.group(1)
        if path.endswith("/chat/completions"):
            return "openai", None
        return None, None

    def authorized(self, kind):
        """None when the credentials fit, else the 401 error body to send."""
        auth = self.headers.get("Authorization") or ""
        if kind == "azure":
            az = stub.azure or {}
            key = self.headers.get("api-key")
            if key is not None and key == az.get("api_key"):
                return None
            if az.get("token") and auth == "Bearer " + az["token"]:
                return None
            # Azure's own shape for a wrong key.
            return {"error": {"code": "401", "message": "Access denied due to invalid "
                              "subscription key or wrong API endpoint. Make sure to provide "
                              "a valid key for an active subscription and use a correct "
                              "regional API endpoint for your resource."}}
        if stub.api_key is None:
            return None
        if not auth:
            return error_body(401, "You didn't provide an API key. You need to provide your "
                              "API key in an Authorization header using Bearer auth (i.e. "
                              "Authorization: Bearer YOUR_KEY).", code=None)
        if auth != "Bearer " + stub.api_key:
            return error_body(401)
        return None

    def entra_token(self, url, raw):
        """Microsoft Entra's client-credentials grant, for Azure OpenAI's scope."""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        stub.record({"method": "POST", "path": url.path, "form": {
            k: ("(secret)" if k == "client_secret" else v) for k, v in form.items()}})
        entra = (stub.azure or {}).get("entra") or {}
        if form.get("grant_type") != "client_credentials":
            return self.send_json(400, {"error": "unsupported_grant_type", "error_description":
                                        "AADSTS70003: The app requested an unsupported grant type."})
        if form.get("scope") != "https://cognitiveservices.azure.com/.default":
            return self.send_json(400, {"error": "invalid_scope", "error_description":
                                        "AADSTS70011: The provided value for the input "
                                        "parameter 'scope' is not valid."})
        if (form.get("client_id") != entra.get("client_id")
                or form.get("client_secret") != entra.get("client_secret")):
            return self.send_json(401, {"error": "invalid_client", "error_description":
                                        "AADSTS7000215: Invalid client secret provided."})
        self.send_json(200, {"token_type": "Bearer", "expires_in": 3599,
                             "ext_expires_in": 3599, "access_token": stub.azure["token"]})

    def do_POST(self):
        stub.last_request = time.monotonic()
        raw = self.drain()
        url = urlsplit(self.path)
        if re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", url.path):
            return self.entra_token(url, raw)
        entry = {
            "method": "POST",
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        try:
            entry["body"] = json.loads(raw)
        except ValueError:
            entry["raw_body"] = raw.decode("utf-8", "replace")
        status, obj, headers, raw_answer = self.answer(url, raw, entry)
        entry["status"] = status
        stub.record(entry)
        if raw_answer is not None:
            data = raw_answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_json(status, obj, headers)

    def answer(self, url, raw, entry):
        kind, deployment = self.route(url)
        if kind is None:
            return 404, error_body(404, "Invalid URL (POST %s)" % url.path, code=None), None, None
        if kind == "azure":
            if not stub.azure or deployment != stub.azure.get("deployment"):
                return 404, {"error": {"code": "DeploymentNotFound", "message": "The API "
                             "deployment for this resource does not exist."}}, None, None
            if "api-version" not in entry["query"]:
                return 404, {"error": {"code": "404", "message": "Resource not found"}}, None, None
        denied = self.authorized(kind)
        if denied is not None:
            return 401, denied, None, None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            return 400, error_body(400, "Unsupported content type: '%s'." % ctype), None, None
        body = entry.get("body")
        if not isinstance(body, dict):
            return 400, error_body(400, "We could not parse the JSON body of your request."), None, None
        try:
            if kind == "openai" and not isinstance(body.get("model"), str):
                raise BadRequest("you must provide a model parameter", "model")
            check_messages(body.get("messages"))
            if "tools" in body:
                check_tools(body["tools"])
        except BadRequest as e:
            return 400, error_body(400, str(e), param=e.param), None, None
        step = stub.next_step()
        if step is None:
            return 500, error_body(500, "openai_stub: the script has no step left for "
                                   "request %d" % (stub.served + 1)), None, None
        if "error" in step:
            status = int(step["error"])
            headers = {}
            message = step.get("message")
            if status == 429:
                wait = step.get("retry_after", 1)
                headers["Retry-After"] = str(wait)
                message = message or ("Rate limit reached for requests. Please try again "
                                      "in %ss." % wait)
            return status, error_body(status, message), headers, None
        if "raw" in step:
            return int(step.get("status", 200)), None, None, step["raw"]
        return 200, completion(step, body.get("model") or deployment), None, None


def completion(step, model):
    reply = step.get("reply", {})
    message = {"role": "assistant", "content": reply.get("content"), "refusal": None}
    calls = reply.get("tool_calls")
    if calls:
        message["tool_calls"] = [{
            "id": c["id"], "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        } for c in calls]
    finish = step.get("finish_reason") or ("tool_calls" if calls else "stop")
    return {
        "id": "chatcmpl-stub%d" % stub.served,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_stub",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def main():
    global stub
    ap = argparse.ArgumentParser(description="scripted OpenAI-compatible server")
    ap.add_argument("--script", required=True, help="JSON script of the conversation")
    ap.add_argument("--record", required=True, help="file that receives one JSON line a request")
    ap.add_argument("--idle-exit", type=float, default=120,
                    help="exit after this many seconds without a request (0: never)")
    args = ap.parse_args()
    with open(args.script, encoding="utf-8") as f:
        stub = Stub(json.load(f), args.record)
    open(args.record, "w").close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.idle_exit > 0:
        def watchdog():
            while time.monotonic() - stub.last_request < args.idle_exit:
                time.sleep(0.5)
            os._exit(0)
        threading.Thread(target=watchdog, daemon=True).start()
    print("openai_stub: listening on http://127.0.0.1:%d pid %d"
          % (server.server_address[1], os.getpid()), flush=True)
    server.serve_forever()


stub = None

if __name__ == "__main__":
    sys.exit(main())
