"""upload_clients.py: one upload as a real Python client sends it.

  upload_clients.py CLIENT URL TOKEN NAME DATA_FILE

CLIENT is requests, httpx or aiohttp (Debian's python3-requests,
python3-httpx, python3-aiohttp), or:
  sk        httpx with Content-Type: application/json left on the client, as
            Semantic Kernel's SessionsPythonTool has it after its first
            execute: a multipart body under a JSON type
  chunked   requests sending a multipart body of its own making without
            Content-Length (Transfer-Encoding: chunked)
The file part is named `file`, with NAME as its file name, type
application/octet-stream. Prints {"status": N, "body": "..."} on stdout.
"""
import asyncio
import json
import sys

client, url, token, name, path = sys.argv[1:6]
with open(path, "rb") as f:
    data = f.read()
auth = {"Authorization": "Bearer " + token}
files = {"file": (name, data, "application/octet-stream")}

if client == "requests":
    import requests
    r = requests.post(url, headers=auth, files=files, timeout=120)
    status, body = r.status_code, r.text
elif client in ("httpx", "sk"):
    import httpx
    headers = dict(auth)
    if client == "sk":
        headers["Content-Type"] = "application/json"
    with httpx.Client(headers=headers, timeout=120) as c:
        r = c.post(url, files=files)
        if client == "sk":
            assert r.request.headers["Content-Type"] == "application/json"
    status, body = r.status_code, r.text
elif client == "aiohttp":
    import aiohttp

    async def post():
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
        async with aiohttp.ClientSession(headers=auth) as s:
            async with s.post(url, data=form) as r:
                return r.status, await r.text()
    status, body = asyncio.run(post())
elif client == "chunked":
    import requests
    boundary = "sesh-chunked-boundary"
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n\r\n'
            % (boundary, name)).encode()

    def pieces():
        yield head
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]
        yield ("\r\n--%s--\r\n" % boundary).encode()
    r = requests.post(url, data=pieces(), timeout=120, headers=dict(
        auth, **{"Content-Type": "multipart/form-data; boundary=" + boundary}))
    status, body = r.status_code, r.text
else:
    sys.exit("unknown client " + client)
print(json.dumps({"status": status, "body": body}))
