#!/usr/bin/python3
"""A stand-in for Azure: a dynamic sessions pool and Microsoft Entra sign-in.

    azure_stub.py            listens on 127.0.0.1 (a free port)

Prints `azure_stub: listening on PORT pid PID`, then serves, answering as
shared/pool-api.md and the Entra / managed identity docs say:

  the pool management API, both generations, at the root and under
  /subscriptions/{s}/resourceGroups/{g}/sessionPools/{p}/:
    POST code/execute, POST files/upload, GET files, GET files/content/{name}   (2024-02-02-preview)
    POST executions, GET executions/{id}, POST files, GET files, GET files/{name},
    DELETE files/{name}, GET files/{name}/content                              (2024-10-02-preview)
    GET/DELETE session, GET listSessions, GET metadata                         (2025-02-02-preview)
    POST .management/stopSession, recursive listing                           (2025-10-02-preview)
  Code runs in this process (exec, one namespace per session): it only stands
  in for Azure's sandbox and runs nothing but the tests' own code.

  Entra:  POST /{tenant}/oauth2/v2.0/token        client credentials (secret or assertion)
  App Service / Container Apps managed identity:  GET /msi/token  (X-IDENTITY-HEADER)
  Instance metadata service:                      GET /metadata/identity/oauth2/token  (Metadata: true)

Pool calls need `Authorization: Bearer T` with T a token this stub issued or
one set by /_control/config; else 401 with an empty body, like Azure.

Control (for specs, JSON bodies):
  POST /_control/config  {"tokens": [...], "token_lifetime": S, "secret": ..., "assertion": ...,
                          "identity_header": ..., "revoke": true, "az_token": ...}
  POST /_control/script  {"method": M, "path": P (pool path without prefix, a regex), "times": N,
                          "responses": [{"status", "headers", "body", "json", "action", "delay"}]}
                          action: "reset" (RST before any answer), "truncate" (Content-Length larger
                          than the body, then close), "invalid_json" (200 with broken JSON),
                          "slow" (sleep delay seconds, then answer normally)
  GET  /_control/log     the requests seen: [{"method", "path", "query", "auth", "headers"}]
  POST /_control/clear   forget scripts and logs
  POST /_control/reset   forget scripts, logs, sessions, tokens
"""
import ast
import base64
import contextlib
import email.parser
import email.policy
import io
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

lock = threading.RLock()
state = {}

GEN1 = {"2024-02-02-preview", "2024-08-02-preview"}
GEN2 = {"2024-10-02-preview", "2025-02-02-preview", "2025-10-02-preview"}
PREFIX = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/sessionPools/[^/]+")
ID_OK = re.compile(r"^[A-Za-z0-9_|}{\[\]:\";'<>?/.,@#$%^&*()\-+=!~`]{4,128}$")


def reset_state():
    state.clear()
    state.update(tokens={}, static_tokens=set(), lifetime=3600, scripts=[], log=[],
                 sessions={}, executions={}, secret="s3cret", assertion=None,
                 identity_header="id-header", revoke=False, issued=0)


reset_state()


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Session:
    def __init__(self, ident):
        self.ident = ident
        self.ns = {"__name__": "__main__"}
        self.files = {}            # "dir/name" -> (bytes, modified)
        self.created = now_iso()
        self.accessed = self.created


def run_code(sess, code):
    """Like a notebook cell: stdout, stderr, the last expression's value."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.time()
    status, result = "Success", ""
    try:
        tree = ast.parse(code, mode="exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(tree, "<cell>", "exec"), sess.ns)
            if last is not None:
                value = eval(compile(last, "<cell>", "eval"), sess.ns)
                result = value_of(value)
    except Exception as e:
        status, result = "Failure", None
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
            tb = tb.tb_next
        err.write("".join(traceback.format_exception(type(e), e, tb)))
    ms = int((time.time() - t0) * 1000)
    return status, out.getvalue(), err.getvalue(), result, ms


def value_of(v):
    if v is None:
        return ""
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if v != v else v
    if isinstance(v, dict) and v.get("type") == "image":
        return v
    return repr(v)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # --- plumbing ---
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, target=None):
        e = {"code": code, "message": message}
        if target:
            e["target"] = target
        self.send(status, {"error": e}, headers=[("x-ms-error-code", code)])

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def do_PUT(self):
        self.route()

    def route(self):
        url = urlsplit(self.path)
        self.q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path
        if path.startswith("/_control/"):
            return self.control(path[len("/_control/"):])
        raw = self.body()
        if path == "/msi/token" or path == "/metadata/identity/oauth2/token":
            self.record(path, raw)
            return self.managed_identity(path)
        m = re.match(r"^/([^/]+)/oauth2/v2\.0/token$", path)
        if m:
            self.record(path, raw)
            return self.entra(m.group(1), raw)
        path = PREFIX.sub("", path)
        rel = path.strip("/")
        self.record(rel, raw)
        if self.scripted(rel):
            return
        return self.pool(rel, raw)

    def record(self, path, raw):
        with lock:
            state["log"].append({"method": self.command, "path": path, "query": self.q,
                                 "auth": self.headers.get("Authorization"),
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "size": len(raw)})

    # --- scripts ---
    def scripted(self, rel):
        with lock:
            for s in state["scripts"]:
                if s.get("method", self.command) == self.command and s["responses"] \
                        and re.fullmatch(s["path"], rel):
                    r = s["responses"].pop(0)
                    break
            else:
                return False
        return self.play(r)

    def play(self, r):
        action = r.get("action")
        if r.get("delay"):
            time.sleep(r["delay"])
        if action == "slow":
            return False
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if action == "truncate":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"properties": {"status"')
            self.wfile.flush()
            self.close_connection = True
            return True
        if action == "invalid_json":
            self.send(200, "{\"properties\": {\"status\": \"Success\", oops")
            return True
        body = r.get("body", "")
        if "json" in r:
            body = json.dumps(r["json"])
        headers = list((r.get("headers") or {}).items())
        ctype = "application/json"
        for k, v in headers:
            if k.lower() == "content-type":
                ctype = v
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        self.send(r.get("status", 200), body, ctype=ctype, headers=headers)
        return True

    def control(self, what):
        raw = self.body()
        arg = json.loads(raw) if raw else {}
        with lock:
            if what == "config":
                for t in arg.get("tokens", []):
                    state["static_tokens"].add(t)
                for k in ("lifetime", "secret", "assertion", "identity_header", "revoke"):
                    if k in arg:
                        state[k] = arg[k]
                if arg.get("revoke_all"):
                    state["tokens"].clear()
                    state["static_tokens"].clear()
                return self.send(200, {"ok": True})
            if what == "script":
                s = dict(arg)
                s["responses"] = list(arg["responses"])
                # "times": play the (single) response that many times
                if s.get("times", 1) > 1 and len(s["responses"]) == 1:
                    s["responses"] = s["responses"] * s["times"]
                s["times"] = 1
                state["scripts"].append(s)
                return self.send(200, {"ok": True})
            if what == "log":
                return self.send(200, state["log"])
            if what == "reset":
                reset_state()
                return self.send(200, {"ok": True})
            if what == "clear":
                state["log"].clear()
                state["scripts"].clear()
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "no such control"})

    # --- sign-in ---
    def issue(self, kind):
        with lock:
            state["issued"] += 1
            tok = "tok-%s-%d-%s" % (kind, state["issued"], uuid.uuid4().hex)
            state["tokens"][tok] = time.time() + state["lifetime"]
            return tok, state["lifetime"]

    def entra(self, tenant, raw):
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        ctype = self.headers.get("Content-Type", "")
        if self.command != "POST" or not ctype.startswith("application/x-www-form-urlencoded"):
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "AADSTS900144: The request body must contain the following parameter: 'grant_type'."})
        if form.get("grant_type") != "client_credentials":
            return self.send(400, {"error": "unsupported_grant_type",
                                   "error_description": "AADSTS70003: The app requested an unsupported grant type."})
        if form.get("scope") != "https://dynamicsessions.io/.default":
            return self.send(400, {"error": "invalid_scope",
                                   "error_description": "AADSTS70011: The provided value for the input parameter 'scope' is not valid."})
        if "client_assertion" in form:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \
                    or form["client_assertion"] != state["assertion"]:
                return self.send(400, {"error": "invalid_client",
                                       "error_description": "AADSTS700024: Client assertion is not within its valid time range.",
                                       "error_codes": [700024]})
            kind = "wi"
        elif form.get("client_secret") != state["secret"]:
            return self.send(401, {"error": "invalid_client",
                                   "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
                                   "error_codes": [7000215], "trace_id": str(uuid.uuid4())})
        else:
            kind = "sp"
        tok, life = self.issue(kind)
        return self.send(200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
                               "access_token": tok})

    def managed_identity(self, path):
        if self.q.get("resource") != "https://dynamicsessions.io":
            return self.send(400, {"error": "invalid_resource",
                                   "error_description": "AADSTS500011: The resource principal was not found."})
        if path == "/msi/token":
            if self.headers.get("X-IDENTITY-HEADER") != state["identity_header"]:
                return self.send(401, {"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER mismatch"})
            if self.q.get("api-version") != "2019-08-01":
                return self.send(400, {"statusCode": 400, "message": "Unsupported api-version"})
            tok, life = self.issue("mi")
            return self.send(200, {"access_token": tok, "expires_on": str(int(time.time() + life)),
                                   "resource": "https://dynamicsessions.io", "token_type": "Bearer",
                                   "client_id": "00000000-0000-0000-0000-000000000000"})
        if self.headers.get("Metadata") != "true":
            return self.send(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        tok, life = self.issue("imds")
        return self.send(200, {"access_token": tok, "refresh_token": "", "expires_in": str(life),
                               "expires_on": str(int(time.time() + life)), "not_before": str(int(time.time())),
                               "resource": "https://dynamicsessions.io", "token_type": "Bearer"})

    # --- the pool ---
    def authorized(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Bearer "):
            return False
        tok = h[7:]
        with lock:
            if tok in state["static_tokens"]:
                return True
            exp = state["tokens"].get(tok)
            if exp is None or exp < time.time():
                return False
            if state["revoke"]:        # every token issued so far is refused once
                state["tokens"].clear()
                state["revoke"] = False
                return False
            return True

    def session(self, create=True):
        ident = self.q.get("identifier")
        if ident is None:
            self.error(400, "InvalidRequest", "The identifier query parameter is required.", "identifier")
            return None
        if not ID_OK.match(ident):
            self.error(400, "InvalidIdentifier", "The session identifier is not valid.", "identifier")
            return None
        with lock:
            s = state["sessions"].get(ident)
            if s is None and create:
                s = state["sessions"][ident] = Session(ident)
            if s is None:
                self.error(404, "SessionNotFound", "Session '%s' was not found." % ident, "identifier")
                return None
            s.accessed = now_iso()
            return s

    def pool(self, rel, raw):
        version = self.q.get("api-version")
        if not self.authorized():
            return self.send(401, b"")
        if version not in GEN1 and version not in GEN2:
            return self.error(400, "UnsupportedApiVersion", "The api-version '%s' is not supported." % version)
        gen = 1 if version in GEN1 else 2
        m = self.command
        if gen == 1:
            if m == "POST" and rel == "code/execute":
                return self.execute1(raw)
            if m == "POST" and rel == "files/upload":
                return self.upload(raw, 1)
            if m == "GET" and rel == "files":
                return self.list_files(1)
            if m == "GET" and rel.startswith("files/content/"):
                return self.download(unquote(rel[len("files/content/"):]))
        else:
            if m == "POST" and rel == "executions":
                return self.execute2(raw)
            mm = re.fullmatch(r"executions/([^/]+)", rel)
            if m == "GET" and mm:
                return self.get_execution(unquote(mm.group(1)))
            if m == "POST" and rel == "files":
                return self.upload(raw, 2)
            if m == "GET" and rel == "files":
                return self.list_files(2)
            mm = re.fullmatch(r"files/([^/]+)/content", rel)
            if m == "GET" and mm:
                return self.download(self.joined(unquote(mm.group(1))))
            mm = re.fullmatch(r"files/([^/]+)", rel)
            if mm and m in ("GET", "DELETE"):
                return self.file_meta(self.joined(unquote(mm.group(1))), m == "DELETE")
            if version >= "2025-02-02-preview":
                if rel == "session" and m in ("GET", "DELETE"):
                    return self.session_op(m == "DELETE")
                if m == "GET" and rel == "listSessions":
                    return self.list_sessions()
                if m == "GET" and rel == "metadata":
                    return self.metadata()
            if version >= "2025-10-02-preview" and m == "POST" and rel == ".management/stopSession":
                return self.session_op(True, stop=True)
        return self.error(404, "NotFound", "No operation %s %s in api-version %s." % (m, rel, version))

    def joined(self, name):
        d = self.q.get("path", "").strip("/")
        if d.startswith("mnt/data"):
            d = d[len("mnt/data"):].strip("/")
        return d + "/" + name if d else name

    def execute1(self, raw):
        s = self.session()
        if not s:
            return
        try:
            props = json.loads(raw)["properties"]
            code = props["code"]
        except Exception:
            return self.error(400, "InvalidRequestBody", "The request body is not a valid execution request.")
        with lock:
            status, out, err, result, ms = run_code(s, code)
        return self.send(200, {"$id": "1", "properties": {"$id": "2", "status": status, "stdout": out,
                                                          "stderr": err, "result": result,
                                                          "executionTimeInMilliseconds": ms}})

    def execution(self, s, ex):
        return {"id": ex["id"], "identifier": s.ident, "executionType": ex["type"], "status": ex["status"],
                "result": ex.get("result")}

    def execute2(self, raw):
        s = self.session()
        if not s:
            return
        try:
            body = json.loads(raw)
            code = body["code"]
            if body.get("codeInputType", "Inline").lower() == "inlinebase64":
                code = base64.b64decode(code).decode()
            etype = body.get("executionType", "Synchronous")
        except Exception:
            return self.error(400, "InvalidRequestBody", "The request body is not a valid execution request.")
        if self.q.get("api-version") == "2025-10-02-preview" and "timeoutInSeconds" not in body:
            return self.error(400, "InvalidRequestBody", "timeoutInSeconds is required.", "timeoutInSeconds")
        op = self.headers.get("operation-id") or str(uuid.uuid4())
        ex = {"id": op, "type": etype.capitalize(), "status": "Running", "result": None}
        limit = int(body.get("outputStreamsMaxLength", 4096))

        def work():
            with lock:
                status, out, err, result, ms = run_code(s, code)
            ex["result"] = {"stdout": out[:limit], "stderr": err[:limit], "executionResult": result,
                            "executionTimeInMilliseconds": ms}
            ex["status"] = "Succeeded" if status == "Success" else "Failed"
        with lock:
            state["executions"][(s.ident, op)] = ex
        headers = [("operation-id", op), ("Operation-Location", "executions/" + op)]
        if etype.lower() == "asynchronous":
            threading.Thread(target=work, daemon=True).start()
            return self.send(202, self.execution(s, ex), headers=headers)
        work()
        return self.send(200, self.execution(s, ex), headers=headers)

    def get_execution(self, op):
        s = self.session(create=False)
        if not s:
            return
        ex = state["executions"].get((s.ident, op))
        if not ex:
            return self.error(404, "ExecutionNotFound", "Execution '%s' was not found." % op, "id")
        return self.send(200, self.execution(s, ex))

    def upload(self, raw, gen):
        s = self.session()
        if not s:
            return
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return self.error(400, "InvalidRequestBody", "Expected multipart/form-data.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        part = None
        for p in msg.iter_parts():
            if p.get_param("name", header="content-disposition") == "file":
                part = p
        if part is None:
            return self.error(400, "InvalidRequestBody", "The multipart body has no part named 'file'.")
        name = part.get_filename() or ""
        if name.startswith("/mnt/data/"):
            name = name[len("/mnt/data/"):]
        if gen == 2:
            name = self.joined(name)
        if not name or ".." in name.split("/"):
            return self.error(400, "InvalidFileName", "The file name is not valid.")
        data = part.get_payload(decode=True) or b""
        with lock:
            s.files[name] = (data, now_iso())
        if gen == 1:
            return self.send(200, {"$id": "1", "value": [self.file1(name, s.files[name], "2")]})
        return self.send(200, self.file2(name, s.files[name]))

    def file1(self, name, f, i="2"):
        return {"$id": i, "properties": {"$id": str(int(i) + 1), "filename": name, "size": len(f[0]),
                                         "lastModifiedTime": f[1]}}

    def file2(self, name, f, ftype="File"):
        d, _, base = name.rpartition("/")
        out = {"name": base, "type": ftype, "contentType": "application/octet-stream",
               "sizeInBytes": len(f[0]) if f else 0, "lastModifiedAt": f[1] if f else now_iso()}
        if self.q.get("api-version") == "2025-10-02-preview":
            out["directory"] = "/mnt/data/" + d if d else "/mnt/data"
        return out

    def list_files(self, gen):
        s = self.session()
        if not s:
            return
        if gen == 1:
            return self.send(200, {"$id": "1", "value": [self.file1(n, f, str(2 + 2 * i))
                                                         for i, (n, f) in enumerate(sorted(s.files.items()))]})
        d = self.q.get("path", "").strip("/")
        if d.startswith("mnt/data"):
            d = d[len("mnt/data"):].strip("/")
        rec = self.q.get("recursive", "false").lower() == "true"
        out, dirs = [], set()
        for n, f in sorted(s.files.items()):
            nd, _, base = n.rpartition("/")
            if nd == d:
                out.append(self.file2(n, f))
            elif rec and (d == "" or nd.startswith(d + "/")):
                out.append(self.file2(n, f))
            elif (d == "" or nd.startswith(d + "/")) and not rec:
                sub = nd[len(d):].strip("/").split("/")[0]
                full = (d + "/" + sub) if d else sub
                if full not in dirs:
                    dirs.add(full)
                    out.append(self.file2(full, None, "Directory"))
        return self.send(200, {"value": out, "nextLink": None})

    def download(self, name):
        s = self.session()
        if not s:
            return
        f = s.files.get(name)
        if f is None:
            return self.error(404, "FileNotFound", "File '%s' was not found." % name, "name")
        return self.send(200, f[0], ctype="application/octet-stream")

    def file_meta(self, name, delete):
        s = self.session()
        if not s:
            return
        f = s.files.get(name)
        if f is None:
            return self.error(404, "FileNotFound", "File '%s' was not found." % name, "name")
        if delete:
            with lock:
                del s.files[name]
            return self.send(204)
        return self.send(200, self.file2(name, f))

    def session_op(self, delete, stop=False):
        s = self.session(create=False)
        if not s:
            return
        if delete:
            with lock:
                del state["sessions"][s.ident]
            if stop:
                return self.send(200, "Session %s stopped." % s.ident, ctype="text/plain")
            return self.send(204)
        return self.send(200, self.session_doc(s))

    def session_doc(self, s):
        return {"identifier": s.ident, "createdAt": s.created, "lastAccessedAt": s.accessed,
                "expireAt": "2099-01-01T00:00:00Z", "etag": '"%s"' % uuid.uuid5(uuid.NAMESPACE_OID, s.ident)}

    def list_sessions(self):
        skip = int(self.q.get("skip", "0") or 0)
        page = 2
        with lock:
            items = [self.session_doc(s) for _, s in sorted(state["sessions"].items())]
        chunk = items[skip:skip + page]
        nxt = None
        if skip + page < len(items):
            nxt = "http://%s/listSessions?api-version=%s&skip=%d" % (self.headers.get("Host"),
                                                                      self.q.get("api-version"), skip + page)
        return self.send(200, {"sessions": chunk, "nextLink": nxt})

    def metadata(self):
        return self.send(200, {
            "runtimes": [{"name": "python", "version": "3.12.8"}],
            "preInstalledPackages": [{"name": "numpy", "version": "1.26.4"}, {"name": "pandas", "version": "2.2.3"}],
            "createdAt": "2025-01-01T00:00:00Z", "lastUpdatedAt": "2025-02-01T00:00:00Z",
            "jupyterKernel": {"name": "python3", "version": "6.29.5", "projectUrl": "https://ipython.org",
                              "description": "IPython Kernel for Jupyter"}})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that hung up (timeouts, resets are what the specs do) is not news
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def watch_parent():
    """Exit when the spec that started us is gone (we were reparented)."""
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def main():
    threading.Thread(target=watch_parent, daemon=True).start()
    srv = Server(("127.0.0.1", 0), Handler)
    print("azure_stub: listening on %d pid %d" % (srv.server_address[1], os.getpid()), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
