"""Helpers of the predict/serve tests: real H.264 videos, a server in a thread, HTTP uploads."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

ASTRONAUT_FPS, ASTRONAUT_FRAMES, ASTRONAUT_SIZE = 10, 50, 256
# `python -c SERVE_MAIN serve ...` runs the serve command in a process of its own.
SERVE_MAIN = """
import argparse, sys
from finecliper.serve import commands
parser = argparse.ArgumentParser()
commands.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    """(T, H, W, 3) uint8 frames -> H.264 mp4 (even sizes)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def astronaut_offsets(count: int = ASTRONAUT_FRAMES) -> np.ndarray:
    """(T, 2) pan of the view over the image, in source pixels (x sways, y drifts down)."""
    t = np.arange(count)
    return np.stack([40 * np.sin(2 * np.pi * t / count), 24 * t / count], axis=1).round()


def astronaut_frames(count: int = ASTRONAUT_FRAMES, size: int = ASTRONAUT_SIZE) -> np.ndarray:
    from skimage.data import astronaut

    image = astronaut()
    frames = []
    for dx, dy in astronaut_offsets(count).astype(int):
        view = image[40 + dy : 40 + dy + 384, 64 + dx : 64 + dx + 384]
        frames.append(np.asarray(Image.fromarray(view).resize((size, size))))
    return np.stack(frames)


class RunningServer:
    """A ``finecliper serve`` server on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app) -> None:
        from finecliper.serve.server import make_server

        self.app = app
        self.server = make_server(app, "127.0.0.1", 0, quiet=True)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def encode_form(
    fields: dict[str, str] | None = None, files: dict[str, tuple[str, bytes]] | None = None
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type, as a browser sends it."""
    boundary = f"----finecliper{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for name, value in (fields or {}).items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data) in (files or {}).items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        chunks.append(head.encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One HTTP request with the path sent exactly as given (no normalisation)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return Response(answer.status, dict(answer.getheaders()), answer.read())
    finally:
        connection.close()


def post_form(url: str, fields=None, files=None) -> Response:
    body, content_type = encode_form(fields, files)
    return request(url, "POST", "/api/predict", body, {"Content-Type": content_type})
