"""WSGI apps as legacy upstreams for the integration tests.

    python app.py wsgiref   a plain WSGI app on the standard library's
                            wsgiref.simple_server (HTTP/1.0, closes after
                            every answer)
    python app.py flask     a Flask app on Werkzeug's threaded server
                            (HTTP/1.1 keep-alive), with the method-override
                            middleware apps commonly add
    python app.py http      a hand-written handler on the standard library's
                            http.server, HTTP/1.1 keep-alive, that never
                            reads a request body (as many internal tools do):
                            an unread body is read as the next request.
                            GET /__log lists every request it handled
                            ({method, path, headers})

Both listen on 127.0.0.1, a free port, and print `port=<n>` as the first
line on stdout. They exit when stdin closes.

Each answer is JSON: {framework, route, method, original_method, path,
raw_uri, headers, environ_headers, body_len}. `route` names the handler that
matched; `path` is PATH_INFO as the framework sees it (percent-decoded);
`raw_uri` is the request target as received when the server tells it;
`headers` are the header names as the framework presents them;
`environ_headers` are the WSGI environ keys (HTTP_X_FOO: `-` and `_` are one
character there). Routes: /admin[/...] "admin", /public[/...] "public",
/nobody[/...] "nobody" (answers without reading the body), anything else
"fallback".
"""

import json
import sys
import threading

# Every request the `http` server handled, for GET /__log.
SEEN = []

OVERRIDE_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def route_of(path):
    for name in ("admin", "public", "nobody"):
        if path == "/" + name or path.startswith("/" + name + "/"):
            return name
    return "fallback"


def read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def environ_headers(environ):
    out = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(k):
            out[k] = environ[k]
    return out


def answer(framework, route, environ, headers, body_len, original_method):
    return json.dumps(
        {
            "framework": framework,
            "route": route,
            "method": environ["REQUEST_METHOD"],
            "original_method": original_method,
            "path": environ.get("PATH_INFO", ""),
            "raw_uri": environ.get("REQUEST_URI") or environ.get("RAW_URI"),
            "headers": headers,
            "environ_headers": environ_headers(environ),
            "body_len": body_len,
        }
    ).encode()


def wsgiref_app(environ, start_response):
    route = route_of(environ.get("PATH_INFO", ""))
    body_len = 0 if route == "nobody" else len(read_body(environ))
    headers = {
        k[5:].replace("_", "-").title(): v
        for k, v in environ.items()
        if k.startswith("HTTP_")
    }
    method = environ["REQUEST_METHOD"]
    out = answer("wsgiref", route, environ, headers, body_len, method)
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
    )
    return [out]


class MethodOverride:
    """The method-override middleware Flask apps commonly add: a POST with
    `X-HTTP-Method-Override` (or a `_method` query parameter) is handled as
    the method it names."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ["portcullis.original_method"] = environ["REQUEST_METHOD"]
        if environ["REQUEST_METHOD"] == "POST":
            from urllib.parse import parse_qs

            wanted = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE") or next(
                iter(parse_qs(environ.get("QUERY_STRING", "")).get("_method", [])),
                None,
            )
            if wanted and wanted.upper() in OVERRIDE_METHODS:
                environ["REQUEST_METHOD"] = wanted.upper()
        return self.app(environ, start_response)


def flask_app():
    from flask import Flask, Response, request

    app = Flask("portcullis_test_upstream")
    methods = sorted(OVERRIDE_METHODS | {"TRACE"})

    def handler(route):
        def view(rest=None):
            environ = request.environ
            body_len = 0 if route == "nobody" else len(request.get_data())
            out = answer(
                "flask",
                route,
                environ,
                dict(request.headers.items()),
                body_len,
                environ.get("portcullis.original_method"),
            )
            return Response(out, content_type="application/json")

        view.__name__ = "view_" + route
        return view

    for name in ("admin", "public", "nobody"):
        view = handler(name)
        app.add_url_rule("/" + name, name, view, methods=methods)
        app.add_url_rule("/" + name + "/<path:rest>", name + "_rest", view, methods=methods)
    fallback = handler("fallback")
    app.add_url_rule("/", "fallback_root", fallback, methods=methods)
    app.add_url_rule("/<path:rest>", "fallback", fallback, methods=methods)
    app.wsgi_app = MethodOverride(app.wsgi_app)
    return app


def serve_wsgiref():
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, wsgiref_app, handler_class=Quiet)
    return server, server.server_port


def serve_flask():
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, flask_app(), threaded=True)
    return server, server.server_port


def serve_http():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            path = self.path.split("?", 1)[0]
            if path == "/__log":
                self.send_json(json.dumps(SEEN).encode())
                return
            SEEN.append(
                {
                    "method": self.command,
                    "path": path,
                    "headers": dict(self.headers.items()),
                }
            )
            self.send_json(json.dumps(
                {
                    "framework": "http.server",
                    "route": route_of(path),
                    "method": self.command,
                    "original_method": self.command,
                    "path": path,
                    "raw_uri": self.path,
                    "headers": dict(self.headers.items()),
                    "environ_headers": {},
                    "body_len": 0,
                }
            ).encode())

        def send_json(self, out):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        def __getattr__(self, name):
            if name.startswith("do_"):
                return self.handle_any
            raise AttributeError(name)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    return server, server.server_port


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "wsgiref"
    server, port = {"wsgiref": serve_wsgiref, "flask": serve_flask, "http": serve_http}[kind]()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write("port=%d\n" % port)
    sys.stdout.flush()
    sys.stdin.read()  # until the test harness closes stdin


if __name__ == "__main__":
    main()
