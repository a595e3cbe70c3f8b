"""The HTTP side of ``finecliper serve``: request handling, connection caps, cut-offs for slow
requests, and a clean stop on Ctrl-C or ``kill``. What a request does is the
:class:`~finecliper.serve.web.ServeApp`'s business."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.io import dumps_json
from finecliper.serve.limits import RETRY_AFTER_S, BusyError, ServeLimits, UploadError
from finecliper.serve.multipart import FormError, form_boundary, parse_form
from finecliper.serve.web import ServeApp

FORM_OVERHEAD = 64 * 1024  # multipart headers and small fields on top of the file itself
DRAIN_FACTOR = 4  # bodies up to this many times the limit are read and dropped before a 413
_PAGE = resources.files("finecliper.serve") / "static" / "index.html"


def _busy_reply() -> bytes:
    """The whole HTTP answer to a connection over ``max_connections``."""
    body = dumps_json({"error": str(BusyError("the server has too many connections"))}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Handler(BaseHTTPRequestHandler):
    server: ServeServer
    server_version = "finecliper"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.app = self.server.app
        self.timeout = self.server.limits.client_timeout_s  # applied to the socket by setup()
        super().setup()

    def handle_one_request(self) -> None:
        # The request's head and body must arrive in time (the server cuts it off otherwise).
        self._deadline = time.monotonic() + self.server.limits.upload_timeout_s
        self.server.set_deadline(self.connection, self._deadline)
        super().handle_one_request()

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, action) -> None:
        try:
            action(urlsplit(self.path).path)
        except UploadError as exc:
            self._refuse(str(exc), exc.status)
        except TimeoutError:
            limit = self.server.limits.client_timeout_s
            self._refuse(f"the client sent nothing for {limit:g} s", HTTPStatus.REQUEST_TIMEOUT)
        except FormError as exc:
            self._refuse(str(exc), HTTPStatus.BAD_REQUEST)
        except FineCLIPERError as exc:
            self._refuse(str(exc), HTTPStatus.UNPROCESSABLE_ENTITY)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # one request's failure never stops the server
            traceback.print_exc(file=sys.stderr)
            self._refuse(f"internal error ({type(exc).__name__})", 500)

    def _refuse(self, message: str, status: int) -> None:
        # A refused upload's body may be partly unread: never reuse the connection after it.
        if self.command == "POST":
            self.close_connection = True
        busy = status == HTTPStatus.SERVICE_UNAVAILABLE
        self._json({"error": message}, status, {"Retry-After": str(RETRY_AFTER_S)} if busy else {})

    def _get(self, path: str) -> None:
        if path in ("/", "/index.html"):
            self._send(_PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path == "/api/config":
            self._json(self.app.config())
        elif path == "/api/health":
            self._json({"status": "ok"})
        elif (found := self.app.result_file(path)) is not None:
            self._send_file(*found)
        else:
            self._json({"error": f"not found: {path[:200]}"}, HTTPStatus.NOT_FOUND)

    def _post(self, path: str) -> None:
        if path != "/api/predict":
            self._drain_body(self._declared_length())
            self._json({"error": f"not found: {path[:200]}"}, HTTPStatus.NOT_FOUND)
            return
        form = parse_form(self._receive_body(), form_boundary(self.headers.get("Content-Type")))
        self.server.set_deadline(self.connection, None)  # all in: the prediction may take long
        upload = form.get("video")
        if upload is not None and upload.filename:
            self._json(self.app.predict_upload(upload.filename, upload.data))
        elif "sample" in form and form["sample"].text():
            self._json(self.app.predict_sample(form["sample"].text()))
        else:
            raise UploadError("choose a video file to upload (form field 'video') or a sample")

    # ---- request bodies ------------------------------------------------------------------

    def _declared_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            raise UploadError(
                "the upload needs a Content-Length header", HTTPStatus.LENGTH_REQUIRED
            )
        try:
            length = int(value)
        except ValueError:
            raise UploadError(f"bad Content-Length {value[:40]!r}") from None
        if length < 0:
            raise UploadError(f"bad Content-Length {length}")
        return length

    def _receive_body(self) -> bytes:
        """The body of an upload, if one of the ``max_uploads`` slots is free."""
        slots = self.server.upload_slots
        if not slots.acquire(blocking=False):
            self._drain_body(self._declared_length())
            raise BusyError(
                f"the server is busy ({self.server.limits.max_uploads} uploads arriving)"
            )
        try:
            return self._read_body()
        finally:
            slots.release()

    def _read_body(self) -> bytes:
        length = self._declared_length()
        limit = self.app.limits.max_upload_bytes
        if length > limit + FORM_OVERHEAD:
            self._drain_body(length)
            raise UploadError(
                f"the upload is {_megabytes(length)}; the limit is {_megabytes(limit)}",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        body = self.rfile.read(length)
        if len(body) != length and time.monotonic() >= self._deadline:
            raise UploadError(
                f"the upload did not arrive within {self.server.limits.upload_timeout_s:g} s",
                HTTPStatus.REQUEST_TIMEOUT,
            )
        if len(body) != length:
            raise FormError(f"the upload ended after {len(body)} of {length} bytes")
        return body

    def _drain_body(self, length: int) -> None:
        """Read and drop a refused body so that the client sees the answer, not a reset; a
        body far over the limit is not read: the connection is closed instead."""
        if length > DRAIN_FACTOR * (self.app.limits.max_upload_bytes + FORM_OVERHEAD):
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    # ---- responses -----------------------------------------------------------------------

    def _json(
        self,
        payload: dict[str, Any],
        status: int = HTTPStatus.OK,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = dumps_json(payload, source="API response").encode("utf-8")
        self._send(body, "application/json", status, headers)

    def _send(
        self,
        body: bytes,
        content_type: str,
        status: int = HTTPStatus.OK,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self._common_headers(content_type, len(body))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _common_headers(self, content_type: str, length: int) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")

    def _send_file(self, path: Path, content_type: str) -> None:
        size = path.stat().st_size
        span = _byte_range(self.headers.get("Range"), size)
        if span is None:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self._common_headers("text/plain", 0)
            self.end_headers()
            return
        start, end, partial = span
        self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
        self._common_headers(content_type, end - start + 1)
        self.send_header("Accept-Ranges", "bytes")
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = handle.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _megabytes(size: int) -> str:
    return f"{round(size / 2**20, 1):g} MB"


def _byte_range(header: str | None, size: int) -> tuple[int, int, bool] | None:
    """(first byte, last byte, partial?) for a ``Range`` header with one ``bytes=`` range; the
    whole file for no header or a form not supported here; None when it cannot be satisfied."""
    whole = (0, size - 1, False)
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return whole
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end, True) if start <= end and start < size else None


class ServeServer(ThreadingHTTPServer):
    """A threading HTTP server that caps its connections and cuts off requests that arrive
    too slowly; ``app`` is set before it serves (the port is taken first, so that a port in
    use is reported before the checkpoint is loaded)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, limits: ServeLimits, *, quiet: bool = False) -> None:
        self.limits = limits
        self.quiet = quiet
        self.app: ServeApp | None = None
        self.upload_slots = threading.BoundedSemaphore(limits.max_uploads)
        self._connections: dict[socket.socket, float | None] = {}  # socket -> read deadline
        self._connections_lock = threading.Lock()
        try:
            super().__init__((host, port), _Handler)
        except (OSError, OverflowError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"cannot listen on {host}:{port} ({reason}); choose another --port (0: any "
                "free port) or --host"
            ) from None

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            admitted = len(self._connections) < self.limits.max_connections
            if admitted:
                self._connections[request] = None
        if admitted:
            super().process_request(request, client_address)
            return
        with contextlib.suppress(OSError):  # no handler thread for a connection over the cap
            request.settimeout(1.0)
            request.sendall(_busy_reply())
        super().shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def set_deadline(self, connection: socket.socket, deadline: float | None) -> None:
        """Stop reading ``connection`` at ``deadline`` (``time.monotonic``); None: no limit."""
        with self._connections_lock:
            if connection in self._connections:
                self._connections[connection] = deadline

    def service_actions(self) -> None:
        """Between requests (every half second): end the reading of late requests. Their
        handler's read returns short and it answers 408; the socket stays open for that."""
        now = time.monotonic()
        with self._connections_lock:
            late = [c for c, end in self._connections.items() if end is not None and end <= now]
            for connection in late:
                self._connections[connection] = None
        for connection in late:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RD)


def make_server(
    app: ServeApp, host: str = "127.0.0.1", port: int = 7860, *, quiet: bool = False
) -> ServeServer:
    """A bound (not yet serving) server for ``app``; port 0 picks a free port."""
    server = ServeServer(host, port, app.limits, quiet=quiet)
    server.app = app
    return server


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) stop the server cleanly.

    Set explicitly because a process started in the background by a shell script inherits
    SIGINT as ignored, and Python keeps it ignored; SIGTERM would kill without cleaning up.
    """
    if threading.current_thread() is threading.main_thread():  # signals go to the main thread
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)


def serve(server: ServeServer, app: ServeApp) -> None:
    """Serve ``app`` until interrupted; the uploads on disk are deleted on the way out, even
    when a prediction is still running."""
    _stop_on_signals()
    server.app = app
    bound_host, bound_port = server.server_address[:2]
    print(
        f"finecliper serve: http://{bound_host}:{bound_port}/  (working folder {app.workdir})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("finecliper serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
        app.close()
