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
prediction), ``results/<id>/`` (the newest ``max_results`` are kept) and ``samples/`` (SynthDFER
clips generated at the first start). Uploads get generated names; the uploaded file name is only
displayed, never used as a path. Result files are looked up by a 32-hex-digit id and a fixed file
name, so no request can reach another path. Uploads are checked before any prediction: size
(``Content-Length`` before reading), extension, a real decode with PyAV, duration and frame
size; each failure is a JSON ``{"error": ...}`` with a 4xx status, and the server stays up.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from finecliper.data.video import VideoReadError, open_video
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.io import atomic_open
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
SAMPLE_CLIPS, SAMPLE_SEED, SAMPLE_SIZE, SAMPLE_FRAMES = 7, 0, 112, 32
_PAGE = resources.files("finecliper.serve") / "static" / "index.html"


class UploadError(FineCLIPERError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 60.0
    max_side: int = 4096  # frame width and height, pixels
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    max_results: int = 100

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_duration_s <= 0 or self.max_results < 1:
            raise ConfigError(f"server limits must be positive: {self}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration_s": self.max_duration_s,
            "max_side": self.max_side,
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
        upload = self.workdir / "uploads" / f"{uuid.uuid4().hex}{extension}"
        with atomic_open(upload, "wb") as handle:
            handle.write(data)
        try:
            check_video(upload, display, self.limits)
            return self._predict(upload, display)
        finally:
            upload.unlink(missing_ok=True)

    def predict_sample(self, name: str) -> dict[str, Any]:
        sample = self.samples.get(name)
        if sample is None:
            raise UploadError(f"no sample named {name[:80]!r}")
        payload = self._predict(sample.folder, f"SynthDFER sample {sample.name}")
        payload["sample_label"] = sample.label
        return payload

    def _predict(self, path: Path, display: str) -> dict[str, Any]:
        result = self.predictor.predict(path)
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
    """Decode the upload's first frame and check its frame size and duration."""
    try:
        with open_video(path) as reader:
            info = reader.info
            frames = reader.decoded()
            if next(frames, None) is None:
                raise UploadError(f"{display!r} holds no decodable video frames")
            duration = info.duration_s
            if duration is None:
                duration = _decoded_duration(frames, info.fps, limits.max_duration_s)
    except VideoReadError as exc:
        reason = re.sub(r"\[Errno -?\d+\] ", "", str(exc).replace(f"{path}: ", ""))
        reason = reason.replace(str(path), display)
        raise UploadError(f"{display!r} is not a readable video ({reason})") from None
    if max(info.width, info.height) > limits.max_side:
        raise UploadError(
            f"{display!r} is {info.width}x{info.height} pixels; the limit is "
            f"{limits.max_side} pixels a side"
        )
    if duration > limits.max_duration_s:
        raise UploadError(
            f"{display!r} is {duration:.1f} s long; the limit is {limits.max_duration_s:g} s"
        )


def _decoded_duration(frames: Any, fps: float | None, limit: float) -> float:
    """Duration by counting frames (containers without one), stopping just past ``limit``."""
    rate = fps or 25.0
    count = 1
    for _ in frames:
        count += 1
        if count / rate > limit:
            break
    return count / rate


# ---- HTTP ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    app: ServeApp
    quiet: bool
    timeout = 120  # seconds a client may stall while sending
    server_version = "finecliper"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, action) -> None:
        try:
            action(urlsplit(self.path).path)
        except UploadError as exc:
            self._refuse(str(exc), exc.status)
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
        self._json({"error": message}, status)

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
        form = parse_form(self._read_body(), form_boundary(self.headers.get("Content-Type")))
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

    def _json(self, payload: dict[str, Any], status: int = HTTPStatus.OK) -> None:
        self._send(json.dumps(payload).encode("utf-8"), "application/json", status)

    def _send(self, body: bytes, content_type: str, status: int = HTTPStatus.OK) -> None:
        self.send_response(status)
        self._common_headers(content_type, len(body))
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
        if not self.quiet:
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


def make_server(app: ServeApp, host: str = "127.0.0.1", port: int = 7860, *, quiet: bool = False):
    """A bound (not yet serving) threading HTTP server; port 0 picks a free port."""
    handler = type("Handler", (_Handler,), {"app": app, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
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


def serve(app: ServeApp, host: str, port: int, *, quiet: bool = False) -> None:
    """Serve until interrupted."""
    _stop_on_signals()
    server = make_server(app, host, port, quiet=quiet)
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
