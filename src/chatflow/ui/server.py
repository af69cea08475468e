"""The HTTP side of ``chatflow ui``: access control, routing and responses.

Security model (tests: ``tests/ui/test_server.py``):

- One random token per server. The printed URL carries it once (``/?token=...``); the
  server answers with an ``HttpOnly``, ``SameSite=Strict`` cookie and a redirect that
  drops it from the address bar. Scripts call ``/api/`` with
  ``Authorization: Bearer <token>``; the page calls it with the cookie plus an
  ``X-ChatFlow-CSRF`` header whose value (an HMAC of the token) only a same-origin
  page can read. Anything else gets 401.
- A state change (POST) additionally needs ``--allow-actions`` (else 403), an
  ``Origin`` equal to this server's, and a JSON body.
- The ``Host`` header must name this server when it listens on loopback, which stops
  DNS-rebinding pages from reaching it.
- Paths are plain ASCII: any ``%``, backslash, ``.`` or ``..`` segment, or unknown
  route is 404; ids are checked by the same rule as everywhere else. Static files
  come from a fixed table, never from a path built out of the request.
- Every response forbids framing, sniffing and caching, and the page's
  Content-Security-Policy allows only this origin's script and style.

Load: the listen backlog holds ``BACKLOG`` pending connections, at most ``max_threads``
connections are served at once (the next waits in the backlog instead of getting a
thread), and a connection idle for ``idle_timeout`` seconds is closed, so a client
that opens connections and sends nothing cannot hold every thread for good
(``tests/ui/test_server.py``: 200 concurrent GETs, the bound, the idle timeout).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chatflow import __version__
from chatflow._validation import id_problem, parse_json
from chatflow.core.engine import WorkflowEngine
from chatflow.errors import (
    USER_TERMS,
    AgentApprovalError,
    ChatFlowError,
    CorruptStateError,
    InstanceNotFoundError,
    InvalidTransitionError,
    LockTimeoutError,
    StorageError,
    ValidationError,
)
from chatflow.ui import api
from chatflow.ui.graph import instance_svg

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 64 * 1024
BACKLOG = 256  # pending connections the kernel queues: 5 (the default) drops a burst
MAX_THREADS = 32  # connections served at once; a browser tab keeps up to 6 open
IDLE_TIMEOUT = 20.0  # seconds a connection may stay silent (the page polls every second)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_PATH_CHARS = re.compile(r"[A-Za-z0-9_/.-]*")

Handler = Callable[[WorkflowEngine, dict[str, str]], Any]


class NotFound(Exception):
    """The path names nothing this server serves."""


class UIServer:
    """Serves the page and ``/api/`` for one engine until ``shutdown``."""

    def __init__(
        self,
        engine: WorkflowEngine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_actions: bool = False,
        token: str | None = None,
        max_threads: int = MAX_THREADS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if max_threads < 1 or not idle_timeout > 0:
            raise ValidationError("max_threads must be at least 1 and idle_timeout positive")
        self.engine = engine
        self.allow_actions = allow_actions
        self.token = token or secrets.token_urlsafe(24)
        self.csrf = hmac.new(self.token.encode(), b"chatflow-ui-csrf", "sha256").hexdigest()
        self.idle_timeout = idle_timeout
        self.httpd = _HTTPServer((host, port), _handler_class(self), max_threads=max_threads)
        self.host = host
        self.port: int = self.httpd.server_address[1]
        self.cookie_name = f"chatflow_ui_{self.port}"  # cookies ignore ports: one per server
        self.loopback = host in LOOPBACK
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: it carries the access token once."""
        return f"{self.origin}/?token={self.token}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> UIServer:
        """Serve from a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close the socket (a server never started is only closed)."""
        self.httpd.closing.set()  # frees a serve loop waiting for a thread slot
        if self._thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def allowed_hosts(self) -> set[str]:
        names = {self.host, "localhost", "127.0.0.1", "[::1]"}
        return {f"{name}:{self.port}" for name in names}

    def valid_token(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def valid_csrf(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())


# -- routes ----------------------------------------------------------------------------

_ID = r"(?P<{}>[A-Za-z0-9_][A-Za-z0-9_-]*)"
_GET_ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"/api/features"), lambda e, p: api.feature_rollups(e)),
    (re.compile(r"/api/overview"), lambda e, p: api.overview(e)),
    (
        re.compile(r"/api/features/" + _ID.format("feature")),
        lambda e, p: api.feature(e, p["feature"]),
    ),
    (
        re.compile(r"/api/instances"),
        lambda e, p: api.instance_rows(
            e, p.get("q_feature"), p.get("q_status"), _limit(p.get("q_limit"))
        ),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid")),
        lambda e, p: api.instance_view(e, p["iid"]),
    ),
    (
        re.compile(r"/api/events"),
        lambda e, p: api.events(e, p.get("q_cursor"), p.get("q_feature"), p.get("q_instance")),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid") + "/stamp"),
        lambda e, p: api.stamp(e, p["iid"]),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid") + "/history"),
        lambda e, p: api.history(e, p["iid"]),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid") + "/artifacts"),
        lambda e, p: api.artifacts(e, p["iid"]),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid") + "/verify"),
        lambda e, p: api.verification(e, p["iid"]),
    ),
    (
        re.compile(r"/api/instances/" + _ID.format("iid") + r"/graph\.svg"),
        lambda e, p: _Raw(instance_svg(api.instance(e, p["iid"])), "image/svg+xml"),
    ),
]
_ACTION_ROUTE = re.compile(
    r"/api/instances/" + _ID.format("iid") + "/(?P<action>" + "|".join(api.ACTIONS) + ")"
)


def _limit(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 1_000_000:
        raise ValidationError(f"limit must be a positive integer, not {text!r}", field="limit")
    return int(text)


class _Raw:
    """A non-JSON API answer (the SVG graph)."""

    def __init__(self, text: str, content_type: str) -> None:
        self.text = text
        self.content_type = content_type


def _match(path: str) -> tuple[Handler, dict[str, str]]:
    for pattern, handler in _GET_ROUTES:
        found = pattern.fullmatch(path)
        if found is not None and _ids_ok(found.groupdict()):
            return handler, found.groupdict()
    raise NotFound(path)


def _ids_ok(params: dict[str, str]) -> bool:
    return all(id_problem(value) is None for value in params.values())


def _clean_path(raw: str) -> str:
    """The request path if it is plain and free of dot segments; else ``NotFound``.

    Nothing the server serves needs an encoded character, so any ``%`` (``%2e%2e``,
    ``%2f``, double encoding) is refused outright rather than decoded and re-checked.
    """
    path = urlsplit(raw).path
    if not path.startswith("/") or _PATH_CHARS.fullmatch(path) is None:
        raise NotFound(path)
    segments = path.split("/")[1:]
    if any(segment in (".", "..") for segment in segments) or "//" in path:
        raise NotFound(path)
    return path


def _status_of(error: ChatFlowError) -> HTTPStatus:
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


# The HTTP status of each kind of error, the first that matches.
_STATUSES: tuple[tuple[type[ChatFlowError], HTTPStatus], ...] = (
    (InstanceNotFoundError, HTTPStatus.NOT_FOUND),
    (InvalidTransitionError, HTTPStatus.CONFLICT),
    (AgentApprovalError, HTTPStatus.FORBIDDEN),
    (ValidationError, HTTPStatus.BAD_REQUEST),
    (CorruptStateError, HTTPStatus.INTERNAL_SERVER_ERROR),
    (LockTimeoutError, HTTPStatus.SERVICE_UNAVAILABLE),
    (StorageError, HTTPStatus.SERVICE_UNAVAILABLE),
)


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_threads`` at once, over a real backlog."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_threads: int,
    ) -> None:
        self.slots = threading.BoundedSemaphore(max_threads)
        self.closing = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the connection's thread once a slot is free.

        Waiting here keeps the serve loop from accepting more, so further connections
        queue in the kernel's backlog rather than each getting a thread.
        """
        while not self.slots.acquire(timeout=0.2):
            if self.closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A page closed mid-answer is normal; anything else is reported as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_class(app: UIServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(_RequestHandler):
        server_app = app
        timeout = app.idle_timeout  # socketserver applies it to every read and write

    return RequestHandler


class _RequestHandler(BaseHTTPRequestHandler):
    server_app: UIServer
    _by_bearer = False
    server_version = f"chatflow-ui/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # -- entry points --------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_HEAD(self) -> None:
        self._dispatch(lambda path: self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "use GET"))

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def do_PUT(self) -> None:
        self._dispatch(self._post)

    def do_DELETE(self) -> None:
        self._dispatch(self._post)

    def do_PATCH(self) -> None:
        self._dispatch(self._post)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: requests carry no secrets worth logging, errors do."""

    def _dispatch(self, handle: Callable[[str], None]) -> None:
        app = self.server_app
        if app.loopback and self.headers.get("Host", "") not in app.allowed_hosts():
            self._send_text(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return
        try:
            path = _clean_path(self.path)
        except NotFound:
            path = None
        try:
            if not self._authorized(path):
                self._send_text(HTTPStatus.UNAUTHORIZED, "token required: open the printed URL")
                return
            if path is None:
                raise NotFound(self.path)
            handle(path)
        except NotFound:
            self._send_text(HTTPStatus.NOT_FOUND, "not found")
        except ChatFlowError as error:
            # In the words people use (the command's), as `chatflow` itself says it.
            text = error.phrased(USER_TERMS)
            self._send_json(_status_of(error), {"error": text, "type": type(error).__name__})

    # -- access control ------------------------------------------------------------

    def _cookie(self) -> str | None:
        try:
            cookies = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = cookies.get(self.server_app.cookie_name)
        return None if morsel is None else morsel.value

    def _authorized(self, path: str | None) -> bool:
        app = self.server_app
        bearer = self.headers.get("Authorization", "")
        self._by_bearer = bearer.startswith("Bearer ") and app.valid_token(bearer[7:])
        if self._by_bearer:
            return True
        if not app.valid_token(self._cookie()):
            return path == "/" and app.valid_token(_query(self.path).get("token"))
        if path is not None and path.startswith("/api/"):
            return app.valid_csrf(self.headers.get("X-ChatFlow-CSRF"))
        return True

    # -- reading -------------------------------------------------------------------

    def _get(self, path: str) -> None:
        app = self.server_app
        if path == "/":
            token = _query(self.path).get("token")
            if token is not None:  # first load: trade the URL's token for a cookie
                self._redirect_with_cookie()
            else:
                self._send_page()
            return
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name not in _STATIC:
                raise NotFound(path)
            text = _asset(name)
            self._send(HTTPStatus.OK, text.encode(), _STATIC[name])
            return
        handler, params = _match(path)
        for key, value in _query(self.path).items():
            params[f"q_{key}"] = value
        result = handler(app.engine, params)
        if isinstance(result, _Raw):
            self._send(HTTPStatus.OK, result.text.encode(), result.content_type)
        else:
            self._send_json(HTTPStatus.OK, result)

    def _send_page(self) -> None:
        app = self.server_app
        page = _asset("index.html")
        page = page.replace("{{csrf}}", app.csrf).replace("{{version}}", __version__)
        page = page.replace("{{actions}}", "on" if app.allow_actions else "off")
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _redirect_with_cookie(self) -> None:
        app = self.server_app
        cookie = f"{app.cookie_name}={app.token}; HttpOnly; SameSite=Strict; Path=/"
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self._common_headers()
        self.end_headers()

    # -- changing ------------------------------------------------------------------

    def _post(self, path: str) -> None:
        app = self.server_app
        found = _ACTION_ROUTE.fullmatch(path)
        action = found is not None and _ids_ok({"iid": found["iid"]})
        if not action and not _is_get(path):
            raise NotFound(path)
        if not app.allow_actions:
            error = "read-only: start `chatflow ui --allow-actions` to act"
            self._send_json(HTTPStatus.FORBIDDEN, {"error": error})
            return
        if found is None or not action or self.command != "POST":
            self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
            return
        if not self._same_origin():
            self._send_json(HTTPStatus.FORBIDDEN, {"error": "cross-origin request refused"})
            return
        body = self._json_body()
        if body is not None:
            result = api.act(app.engine, found["iid"], found["action"], body)
            self._send_json(HTTPStatus.OK, result)

    def _same_origin(self) -> bool:
        """A browser's ``Origin`` must be this server (as the checked ``Host`` names it).

        Scripts holding the token (Bearer) may omit ``Origin``; a page using the cookie
        cannot, since browsers always send it on a POST.
        """
        origin = self.headers.get("Origin")
        if origin is None:
            return self._by_bearer
        return origin == f"http://{self.headers.get('Host', '')}"

    def _json_body(self) -> dict[str, Any] | None:
        """The request's JSON object, or ``None`` after answering why it is unusable."""
        if self.headers.get_content_type() != "application/json":
            self._send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "bad or missing Content-Length"})
            return None
        try:
            body = parse_json(self.rfile.read(length) or b"{}", "the request body")
        except ValidationError:
            raise  # JSON nested too deeply: answered 400 with the reason
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object"})
            return None
        return body

    # -- writing -------------------------------------------------------------------

    def _common_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        if self.command != "GET":  # a refused request's body may be unread: never reuse
            self.send_header("Connection", "close")
            self.close_connection = True

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: HTTPStatus, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, f"{text}\n".encode(), "text/plain; charset=utf-8")


def _is_get(path: str) -> bool:
    try:
        _match(path)
    except NotFound:
        return False
    return True


def _asset(name: str) -> str:
    """A file of the page, read from the installed package (``name`` comes from a table)."""
    return resources.files("chatflow.ui").joinpath("static").joinpath(name).read_text("utf-8")


def _query(raw: str) -> dict[str, str]:
    """Single-valued query parameters (a repeated one keeps its first value)."""
    return {key: values[0] for key, values in parse_qs(urlsplit(raw).query).items()}


def serve(
    engine: WorkflowEngine,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_actions: bool = False,
    open_browser: bool = False,
) -> None:
    """Run the UI until interrupted, printing its URL (the ``chatflow ui`` command)."""
    app = UIServer(engine, host=host, port=port, allow_actions=allow_actions)
    if not app.loopback:
        print(
            f"chatflow: warning: listening on {host}, reachable from other machines; "
            "anyone with the URL can read (and with --allow-actions change) your workflows",
            file=sys.stderr,
        )
    mode = "actions allowed" if allow_actions else "read-only"
    print(f"ChatFlow UI ({mode}) for {engine.state_store!r}")
    print(f"open: {app.url}", flush=True)
    if open_browser:
        import webbrowser  # noqa: PLC0415 - only with --open

        webbrowser.open(app.url)
    try:
        app.serve_forever()
    finally:
        app.httpd.server_close()
