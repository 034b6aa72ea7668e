"""A tiny authenticating front end for glance-api's `trusted-auth` flavor.

With `[paste_deploy] flavor = trusted-auth` glance-api believes the identity headers
(X-Identity-Status, X-User-Id, X-Project-Id, X-Roles) that the component in front of it sets.
The real clients cannot add such headers, so each test identity gets one of these proxies: it
listens on its own loopback port, drops any identity headers the client sent, sets the ones
of its identity, and relays the request to glance-api. Clients then talk to the proxy with
`auth_type none`, exactly as they would talk to any endpoint.

Bodies are relayed whole (the interop suite moves a few MiB at most); chunked request bodies,
which glanceclient sends for uploads, are decoded first.
"""

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

IDENTITY_HEADERS = (
    "x-identity-status",
    "x-user-id",
    "x-project-id",
    "x-tenant-id",
    "x-roles",
    "x-domain-id",
    "x-user-domain-id",
    "x-project-domain-id",
    "x-service-token",
)
HOP_HEADERS = ("connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length")


class IdentityProxy:
    """Relays to `upstream` as the identity (`user_id`, `project_id`, `roles`)."""

    def __init__(self, upstream, user_id, project_id, roles):
        self.upstream = urlsplit(upstream)
        self.identity = {
            "X-Identity-Status": "Confirmed",
            "X-User-Id": user_id,
            "X-Project-Id": project_id,
            "X-Roles": ",".join(roles),
        }
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def _body(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _relay(self):
                body = self._body()
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in IDENTITY_HEADERS + HOP_HEADERS
                }
                headers.update(proxy.identity)
                headers["Host"] = proxy.upstream.netloc
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    res = conn.getresponse()
                    data = res.read()
                finally:
                    conn.close()
                self.send_response_only(res.status, res.reason)
                for k, v in res.getheaders():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                if self.command != "HEAD" and res.status not in (204, 304):
                    self.send_header("Content-Length", str(len(data)))
                elif self.command == "HEAD" and res.getheader("Content-Length"):
                    self.send_header("Content-Length", res.getheader("Content-Length"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class IdentityStandIn:
    """Stands where Keystone's endpoint would be, for the project look-ups the CLIs make.

    `openstack image add project IMAGE PROJECT` (and `image set --project`) first resolves
    PROJECT through the identity service. With `auth_type none` there is no Keystone, and the
    client would ask glance-api itself (which has no /v2/tenants). Pointed here instead
    (OS_IDENTITY_ENDPOINT_OVERRIDE), the client finds a v3 version document and is refused
    every look-up with 403, which is what Keystone answers a project member: OSC then uses
    PROJECT as the id, as it does against a real cloud.
    """

    def __init__(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def _send(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.command == "GET" and self.path.rstrip("/") == "/v3":
                    return self._send(200, {"version": {
                        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                        "links": [{"rel": "self", "href": f"{stand_in.url}/"}],
                        "media-types": [{"base": "application/json",
                                         "type": "application/vnd.openstack.identity-v3+json"}],
                    }})
                return self._send(403, {"error": {
                    "code": 403, "title": "Forbidden",
                    "message": "You are not authorized to perform the requested action.",
                }})

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
