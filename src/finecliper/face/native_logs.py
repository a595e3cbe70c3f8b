"""Keeping MediaPipe's start-up chatter out of the terminal.

MediaPipe's C++ graphs log a handful of lines to the process's stderr (file descriptor 2, which
Python's ``warnings`` and ``logging`` cannot reach) when they are built and first run: the TFLite
XNNPACK delegate notice, absl's "log messages before InitializeLog" notice, "Feedback manager
requires a model with a single signature", "Using NORM_RECT without IMAGE_DIMENSIONS". None of
them concerns the user. ``filtered_native_stderr`` captures descriptor 2 while a graph starts
(``QuietGraph``) and passes on every other line, so a real error is never hidden.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

MEDIAPIPE_NOISE = re.compile(
    r"Created TensorFlow Lite XNNPACK delegate"
    r"|All log messages before absl::InitializeLog\(\) is called"
    r"|inference_feedback_manager\.cc"
    r"|landmark_projection_calculator\.cc"
)


# Descriptor 2 is shared by every thread: one capture at a time (re-entrant for nesting).
_CAPTURE_LOCK = threading.RLock()


@contextmanager
def filtered_native_stderr(noise: re.Pattern[str] = MEDIAPIPE_NOISE) -> Iterator[None]:
    """Capture what native code writes to descriptor 2; re-emit the lines ``noise`` misses."""
    with _CAPTURE_LOCK:
        yield from _capture(noise)


def _capture(noise: re.Pattern[str]) -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not noise.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class QuietGraph:
    """A MediaPipe solution whose native log lines are filtered until it first finds a face.

    A graph logs its start-up lines from its own threads once it is built, and the last of them
    on its first face. Building it and running it once on a blank frame inside the filter waits
    for the first; the filter stays on until the first face (a few file-descriptor calls a
    frame), then is no longer needed. For stateless solutions only (static images, detection).
    """

    def __init__(self, build: Callable[[], Any], found_face: Callable[[Any], bool]) -> None:
        with filtered_native_stderr():
            self.graph = build()
            self.graph.process(np.zeros((64, 64, 3), dtype=np.uint8))
        self.found_face = found_face
        self.started = False

    def process(self, image: np.ndarray) -> Any:
        if self.started:
            return self.graph.process(image)
        with filtered_native_stderr():
            result = self.graph.process(image)
        self.started = self.found_face(result)
        return result

    def close(self) -> None:
        self.graph.close()
