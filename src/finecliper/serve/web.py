"""``finecliper serve``: a small web page and JSON API around a :class:`Predictor`.

Standard library only (``http.server.ThreadingHTTPServer``): pages and result files are served
by threads while predictions run one at a time (the predictor's lock).

Endpoints::

    GET  /                         the page: upload form, sample picker, results
    GET  /api/config               limits, classes and samples, for the page
    GET  /api/health               {"status": "ok"}
    POST /api/predict              multipart form: field "video" (a file) or "sample" (a name);
                                   the result JSON of ``predict --json`` plus "id" and "urls"
    GET  /results/<id>/<file>      annotated.mp4, timeline.png or result.json (Range supported)

Every file the server writes lies in its working folder: ``uploads/`` (deleted after the
prediction, and when the server stops), ``results/<id>/`` (the newest ``max_results`` are
kept) and ``samples/`` (SynthDFER clips generated at the first start). Uploads get generated
names; the uploaded file name is only displayed, never used as a path. Result files are looked
up by a 32-hex-digit id and a fixed file name, so no request can reach another path. Uploads
are checked before any prediction: size (``Content-Length`` before reading), extension, a real
decode of the first frame with PyAV, frame size, then frame count, duration and total decoded
pixels from the header and the demuxed packets (nothing else is decoded); each failure is a
JSON ``{"error": ...}`` with a 4xx status, and the server stays up.

One slow or hostile client cannot stall the others: at most ``max_queue`` predictions run or
wait (one runs at a time), a request waits at most ``max_wait_s`` for its turn, and beyond
either the answer is 503 with ``Retry-After``; at most ``max_uploads`` bodies are received and
``max_connections`` connections open at once (more get 503 right away); a connection idle for
``client_timeout_s`` is closed, and a request whose head and body take longer than
``upload_timeout_s`` to arrive is cut off.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av

from finecliper.data.video import VideoReadError, open_video
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.io import atomic_open, dumps_json
from finecliper.serve.annotate import ANNOTATED_VIDEO, RESULT_JSON, TIMELINE_PLOT, write_outputs
from finecliper.serve.multipart import FormError, form_boundary, parse_form
from finecliper.serve.predictor import DEMO_CHECKPOINT, Predictor

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
RESULT_FILES = {
    ANNOTATED_VIDEO: "video/mp4",
    TIMELINE_PLOT: "image/png",
    RESULT_JSON: "application/json",
}
_RESULT_PATH = re.compile(r"/results/([0-9a-f]{32})/([a-z]+\.[a-z0-9]+)")
FORM_OVERHEAD = 64 * 1024  # multipart headers and small fields on top of the file itself
DRAIN_FACTOR = 4  # bodies up to this many times the limit are read and dropped before a 413
RETRY_AFTER_S = 10  # what a busy server asks a client to wait before it tries again
SAMPLE_CLIPS, SAMPLE_SEED, SAMPLE_SIZE, SAMPLE_FRAMES = 7, 0, 112, 32
_PAGE = resources.files("finecliper.serve") / "static" / "index.html"


class UploadError(FineCLIPERError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class BusyError(UploadError):
    """The server has no room for the request now: 503, retry after ``RETRY_AFTER_S``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; retry in {RETRY_AFTER_S} s", HTTPStatus.SERVICE_UNAVAILABLE)


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 60.0
    max_side: int = 4096  # frame width and height, pixels
    max_frames: int = 1800  # 60 s at 30 fps
    max_pixels: int = 2_000_000_000  # frames x width x height: a minute of 720p at 30 fps
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    max_results: int = 100
    max_queue: int = 4  # predictions running or waiting for their turn
    max_wait_s: float = 120.0  # longest wait for a turn before a 503
    max_uploads: int = 4  # request bodies received at the same time
    max_connections: int = 32
    client_timeout_s: float = 30.0  # a connection silent this long is closed
    upload_timeout_s: float = 300.0  # a request's head and body must arrive within this

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (int, float)) and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"server limit {item.name}={value}: expected a number > 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration_s": self.max_duration_s,
            "max_side": self.max_side,
            "max_frames": self.max_frames,
            "max_pixels": self.max_pixels,
            "extensions": list(self.extensions),
        }


@dataclass(frozen=True)
class Sample:
    name: str  # the clip id
    label: str
    folder: Path


class ServeApp:
    """The server's state and actions, independent of HTTP (tested directly too)."""

    def __init__(
        self,
        predictor: Predictor,
        workdir: str | Path,
        limits: ServeLimits | None = None,
    ) -> None:
        self.predictor = predictor
        self.workdir = Path(workdir).resolve()
        self.limits = limits or ServeLimits()
        for name in ("uploads", "results", "samples"):
            try:
                (self.workdir / name).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FineCLIPERError(
                    f"{self.workdir}: cannot use it as working folder ({exc})"
                ) from exc
        self.samples = self._prepare_samples()
        self._admitted = threading.BoundedSemaphore(self.limits.max_queue)  # running + waiting
        self._turn = threading.Lock()  # one prediction at a time
        self._uploads_lock = threading.Lock()
        self._uploads: set[Path] = set()  # uploads on disk now
        self._closed = False

    def close(self) -> None:
        """Refuse new uploads and delete those on disk (a prediction may still be running)."""
        with self._uploads_lock:
            self._closed = True
            for upload in self._uploads:
                upload.unlink(missing_ok=True)
            self._uploads.clear()

    # ---- samples -------------------------------------------------------------------------

    def _prepare_samples(self) -> dict[str, Sample]:
        """SynthDFER clips in ``samples/synthdfer``, generated once (kept across restarts)."""
        from finecliper.data.synth import generate_synth

        root = self.workdir / "samples" / "synthdfer"
        generate_synth(
            root,
            clips=SAMPLE_CLIPS,
            seed=SAMPLE_SEED,
            size=SAMPLE_SIZE,
            frames=SAMPLE_FRAMES,
            workers=1,
            progress=False,
        )
        samples: dict[str, Sample] = {}
        with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                folder = (root / row["path"]).resolve()
                samples.setdefault(
                    folder.parent.name, Sample(folder.parent.name, row["label"], folder)
                )
        return samples

    def config(self) -> dict[str, Any]:
        return {
            "limits": self.limits.to_dict(),
            "classes": list(self.predictor.classes),
            "checkpoint": Path(self.predictor.checkpoint).name,
            "demo_checkpoint": Path(self.predictor.checkpoint).name == DEMO_CHECKPOINT,
            "samples": [{"name": s.name, "label": s.label} for s in self.samples.values()],
        }

    # ---- predictions ---------------------------------------------------------------------

    def predict_upload(self, filename: str, data: bytes) -> dict[str, Any]:
        """Check an uploaded file, predict it, and write its result files."""
        display = Path(filename.replace("\\", "/")).name[:200] or "upload"
        extension = Path(display).suffix.lower()
        if extension not in self.limits.extensions:
            raise UploadError(
                f"{display!r} is not an accepted video type: use one of "
                f"{', '.join(self.limits.extensions)}",
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )
        if not data:
            raise UploadError(f"{display!r} is empty")
        upload = self._new_upload(extension)
        try:
            with atomic_open(upload, "wb") as handle:
                handle.write(data)
            check_video(upload, display, self.limits)
            return self._predict(upload, display)
        finally:
            with self._uploads_lock:
                upload.unlink(missing_ok=True)
                self._uploads.discard(upload)

    def _new_upload(self, extension: str) -> Path:
        """A fresh upload path, tracked so that :meth:`close` can delete it."""
        with self._uploads_lock:
            if self._closed:
                raise BusyError("the server is stopping")
            upload = self.workdir / "uploads" / f"{uuid.uuid4().hex}{extension}"
            self._uploads.add(upload)
            return upload

    def predict_sample(self, name: str) -> dict[str, Any]:
        sample = self.samples.get(name)
        if sample is None:
            raise UploadError(f"no sample named {name[:80]!r}")
        payload = self._predict(sample.folder, f"SynthDFER sample {sample.name}")
        payload["sample_label"] = sample.label
        return payload

    def _predict(self, path: Path, display: str) -> dict[str, Any]:
        result = self._predict_in_turn(path)
        # What clients see names the upload and the checkpoint, not the server's paths.
        result.video = display
        result.settings["checkpoint"] = Path(self.predictor.checkpoint).name
        result_id = uuid.uuid4().hex
        folder = self.workdir / "results" / result_id
        write_outputs(result, folder)
        self._prune_results()
        payload = result.to_dict()
        payload["id"] = result_id
        payload["urls"] = {
            "annotated_video": f"/results/{result_id}/{ANNOTATED_VIDEO}",
            "timeline_plot": f"/results/{result_id}/{TIMELINE_PLOT}",
            "result": f"/results/{result_id}/{RESULT_JSON}",
        }
        return payload

    def _predict_in_turn(self, path: Path) -> Any:
        """The prediction once its turn comes; 503 when the queue is full or the wait too long."""
        if not self._admitted.acquire(blocking=False):
            raise BusyError(
                f"the server is busy ({self.limits.max_queue} predictions running or waiting)"
            )
        try:
            if not self._turn.acquire(timeout=self.limits.max_wait_s):
                raise BusyError(f"the server is busy (no turn within {self.limits.max_wait_s:g} s)")
            try:
                return self.predictor.predict(path)
            finally:
                self._turn.release()
        finally:
            self._admitted.release()

    def _prune_results(self) -> None:
        folders = [p for p in (self.workdir / "results").iterdir() if p.is_dir()]
        folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in folders[self.limits.max_results :]:
            shutil.rmtree(old, ignore_errors=True)

    def result_file(self, url_path: str) -> tuple[Path, str] | None:
        """The file a ``/results/<id>/<name>`` path names, or None (not found or not allowed)."""
        match = _RESULT_PATH.fullmatch(url_path)
        if match is None or match.group(2) not in RESULT_FILES:
            return None
        path = self.workdir / "results" / match.group(1) / match.group(2)
        return (path, RESULT_FILES[match.group(2)]) if path.is_file() else None


def check_video(path: Path, display: str, limits: ServeLimits) -> None:
    """Refuse an upload that cannot be decoded or is over a limit, before any real work: the
    first frame is decoded, the frame count comes from the header and the packets."""
    try:
        with open_video(path) as reader:
            info = reader.info
            if next(reader.decoded(), None) is None:
                raise UploadError(f"{display!r} holds no decodable video frames")
    except VideoReadError as exc:
        reason = re.sub(r"\[Errno -?\d+\] ", "", str(exc).replace(f"{path}: ", ""))
        reason = reason.replace(str(path), display)
        raise UploadError(f"{display!r} is not a readable video ({reason})") from None
    if max(info.width, info.height) > limits.max_side:
        raise UploadError(
            f"{display!r} is {info.width}x{info.height} pixels; the limit is "
            f"{limits.max_side} pixels a side"
        )
    frames = _frame_count(path, info.num_frames, limits.max_frames)
    if frames > limits.max_frames:
        raise UploadError(
            f"{display!r} has {_at_least(frames, limits.max_frames)} frames; the limit is "
            f"{limits.max_frames} frames"
        )
    duration = info.duration_s if info.duration_s is not None else frames / (info.fps or 25.0)
    if duration > limits.max_duration_s:
        raise UploadError(
            f"{display!r} is {duration:.1f} s long; the limit is {limits.max_duration_s:g} s"
        )
    pixels = frames * info.width * info.height
    if pixels > limits.max_pixels:
        raise UploadError(
            f"{display!r} is {frames} frames of {info.width}x{info.height} pixels "
            f"({pixels / 1e6:.3g} megapixels to decode); the limit is "
            f"{limits.max_pixels / 1e6:.3g} megapixels"
        )


def _frame_count(path: Path, declared: int | None, limit: int) -> int:
    """The header's frame count when it is over ``limit`` (no reason to look further), else
    the video packets counted without decoding, stopping just past ``limit`` (headers can lie
    low or say nothing)."""
    if declared is not None and declared > limit:
        return declared
    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                count += packet.size > 0  # the demuxer ends with an empty flush packet
                if count > limit:
                    break
    except (av.FFmpegError, OSError) as exc:
        raise UploadError(f"the upload's packets cannot be read ({exc})") from None
    return count


def _at_least(count: int, limit: int) -> str:
    return f"more than {limit}" if count == limit + 1 else str(count)


# ---- HTTP ------------------------------------------------------------------------------------


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


def _busy_reply() -> bytes:
    """The whole HTTP answer to a connection over ``max_connections``."""
    body = dumps_json({"error": str(BusyError("the server has too many connections"))}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


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
