"""``finecliper serve``: a small web page and JSON API around a :class:`Predictor`.

This module is the application: what each request does (``ServeApp``). The HTTP handler, the
threading server and its clean stop are :mod:`finecliper.serve.server`; the limits and the check
of an upload against them are :mod:`finecliper.serve.limits`. Standard library only
(``http.server.ThreadingHTTPServer``): pages and result files are served by threads while
predictions run one at a time.

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

import csv
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open
from finecliper.serve.annotate import ANNOTATED_VIDEO, RESULT_JSON, TIMELINE_PLOT, write_outputs
from finecliper.serve.limits import BusyError, ServeLimits, UploadError, check_video
from finecliper.serve.predictor import DEMO_CHECKPOINT, Predictor

RESULT_FILES = {
    ANNOTATED_VIDEO: "video/mp4",
    TIMELINE_PLOT: "image/png",
    RESULT_JSON: "application/json",
}
_RESULT_PATH = re.compile(r"/results/([0-9a-f]{32})/([a-z]+\.[a-z0-9]+)")
SAMPLE_CLIPS, SAMPLE_SEED, SAMPLE_SIZE, SAMPLE_FRAMES = 7, 0, 112, 32


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
