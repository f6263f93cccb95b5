"""An independent token endpoint for the tests: Python's http.server, which
decodes our request with its own code (base64, urllib's form parser).

usage: python_token_endpoint.py CLIENT_ID CLIENT_SECRET REQUESTS [CERT KEY]

Listens on 127.0.0.1 (port printed on the first line of stdout), answers
REQUESTS requests, then exits; it also exits after 30 s whatever happens.
Paths: /basic   client authentication in an HTTP Basic header (RFC 6749 2.3.1)
       /body    client_id and client_secret in the form body
       /chunked like /basic, answered with Transfer-Encoding: chunked
"""
import base64
import http.server
import json
import ssl
import sys
import time
import urllib.parse

client_id, client_secret, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 30
issued = 0
handled = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, payload, chunked=False):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.close_connection = True

    def do_POST(self):
        global issued, handled
        handled += 1
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii"), strict_parsing=True,
                                     keep_blank_values=True)
        path = urllib.parse.urlsplit(self.path).path
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return self.reply(400, {"error": "invalid_request", "error_description": "content type"})
        if form.get("grant_type") != ["client_credentials"] or form.get("scope") != ["read write"]:
            return self.reply(400, {"error": "invalid_request", "error_description": "form"})
        if path == "/body":
            ok = form.get("client_id") == [client_id] and form.get("client_secret") == [client_secret]
            ok = ok and "Authorization" not in self.headers
        else:
            auth = self.headers.get("Authorization", "")
            ok = False
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
                ok = (urllib.parse.unquote_plus(user) == client_id and
                      urllib.parse.unquote_plus(password) == client_secret)
        if not ok:
            return self.reply(401, {"error": "invalid_client"})
        issued += 1
        self.reply(200, {"access_token": "py-token-%d" % issued, "token_type": "Bearer",
                         "expires_in": 600}, chunked=(path == "/chunked"))


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) > 5:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.timeout = 1
print(server.server_address[1], flush=True)
while handled < budget and time.monotonic() < deadline:
    server.handle_request()
server.server_close()
