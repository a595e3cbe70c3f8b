"""``finecliper serve`` under load: hostile uploads refused before any work, a bounded queue
(503 + Retry-After), caps on uploads and connections, slow clients cut off, numeric options
checked, and uploads deleted when the server is stopped mid-prediction."""

from __future__ import annotations

import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from serve_fixtures import SERVE_MAIN, astronaut_frames, post_form, request, write_video

from finecliper.cli import main
from finecliper.errors import ConfigError
from finecliper.serve.limits import RETRY_AFTER_S, ServeLimits

# The bound README.md states: a normal upload sent right after a hostile one (the 1.5 MB
# video of 60,000 frames) is answered within this many seconds.
NORMAL_AFTER_HOSTILE_S = 10.0


@pytest.fixture(scope="module")
def hostile_video(tmp_path_factory) -> Path:
    """60 s of 16 px frames at 1000 fps: 60,000 frames in 1.5 MB, within the size and duration
    limits (this is the upload of issue #16 that stalled the server for about 50 minutes)."""
    frames = np.zeros((60_000, 16, 16, 3), np.uint8)
    return write_video(tmp_path_factory.mktemp("hostile") / "hostile.mp4", frames, 1000)


@pytest.fixture(scope="module")
def normal_video(tmp_path_factory) -> bytes:
    """4 frames of the astronaut, 64 px, at 10 fps."""
    path = tmp_path_factory.mktemp("normal") / "normal.mp4"
    return write_video(path, astronaut_frames(4, 64), 10).read_bytes()


class GatedPredictor:
    """The real predictor, whose predictions wait for ``gate``: it holds the server busy for
    as long as a test needs, without timing guesses."""

    def __init__(self, predictor) -> None:
        self._predictor = predictor
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self._predictor, name)

    def predict(self, video, **options):
        self.entered.set()
        self.gate.wait(timeout=30)
        return self._predictor.predict(video, **options)


class Background:
    """A request answered in a thread (its response or exception kept)."""

    def __init__(self, send) -> None:
        self.answer = None
        self.thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self.thread.start()

    def _run(self, send) -> None:
        try:
            self.answer = send()
        except OSError as exc:
            self.answer = exc

    def result(self, timeout: float = 30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "no answer in time"
        return self.answer


def wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def uploads_on_disk(server) -> int:
    return len(list((server.app.workdir / "uploads").iterdir()))


def test_hostile_upload_does_not_delay_a_normal_one(
    running_server, hostile_video: Path, normal_video: bytes
) -> None:
    server = running_server()  # the default limits
    hostile = Background(
        lambda: post_form(server.url, files={"video": ("hostile.mp4", hostile_video.read_bytes())})
    )
    wait_for(lambda: uploads_on_disk(server) or not hostile.thread.is_alive())  # it arrived
    start = time.monotonic()
    normal = post_form(server.url, files={"video": ("normal.mp4", normal_video)})
    elapsed = time.monotonic() - start
    assert normal.status == 200, normal.body
    assert elapsed < NORMAL_AFTER_HOSTILE_S
    refused = hostile.result()
    assert refused.status == 400
    assert refused.json()["error"] == "'hostile.mp4' has 60000 frames; the limit is 1800 frames"
    assert uploads_on_disk(server) == 0


def test_frames_counted_when_the_header_has_no_count(running_server, tmp_path: Path) -> None:
    # Matroska headers carry no frame count: the packets are counted, stopping past the limit.
    server = running_server(max_frames=100)
    video = write_video(tmp_path / "many.mkv", np.zeros((400, 16, 16, 3), np.uint8), 1000)
    answer = post_form(server.url, files={"video": ("many.mkv", video.read_bytes())})
    assert answer.status == 400
    assert answer.json()["error"] == "'many.mkv' has more than 100 frames; the limit is 100 frames"


def test_decoded_pixels_are_limited(running_server, tmp_path: Path) -> None:
    server = running_server(max_pixels=300_000)
    video = write_video(tmp_path / "px.mp4", np.zeros((20, 128, 128, 3), np.uint8), 10)
    answer = post_form(server.url, files={"video": ("px.mp4", video.read_bytes())})
    assert answer.status == 400
    assert answer.json()["error"] == (
        "'px.mp4' is 20 frames of 128x128 pixels (0.328 megapixels to decode); the limit is "
        "0.3 megapixels"
    )


def test_busy_server_answers_503_with_retry_after(
    running_server, predictor, normal_video: bytes
) -> None:
    gated = GatedPredictor(predictor)
    server = running_server(serving=gated, max_queue=2, max_wait_s=1.0)
    upload = {"video": ("normal.mp4", normal_video)}
    first = Background(lambda: post_form(server.url, files=upload))
    assert gated.entered.wait(10)  # the first one runs (and holds the turn)
    second = Background(lambda: post_form(server.url, files=upload))
    wait_for(lambda: uploads_on_disk(server) == 2)  # the second one waits for its turn
    third = post_form(server.url, files=upload)  # queue full: refused at once
    assert third.status == 503 and third.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "busy (2 predictions running or waiting)" in third.json()["error"]
    waited = second.result()  # no turn within max_wait_s
    assert waited.status == 503 and waited.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "busy (no turn within 1 s)" in waited.json()["error"]
    gated.gate.set()
    assert first.result().status == 200
    assert post_form(server.url, files=upload).status == 200  # free again
    assert uploads_on_disk(server) == 0


def test_uploads_arriving_at_once_are_capped(running_server, normal_video: bytes) -> None:
    server = running_server(max_uploads=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n\r\n--abc\r\n"
        )  # holds the only upload slot while the rest of its body does not come
        time.sleep(0.3)
        answer = post_form(server.url, files={"video": ("normal.mp4", normal_video)})
        assert answer.status == 503 and answer.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert "busy (1 uploads arriving)" in answer.json()["error"]
    wait_for(lambda: post_form(server.url, fields={"sample": "synth_00001"}).status == 200)


def test_connections_are_capped(running_server) -> None:
    server = running_server(max_connections=2)
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            reply = extra.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 503") and f"Retry-After: {RETRY_AFTER_S}" in reply
        assert "too many connections" in reply
    finally:
        for connection in idle:
            connection.close()
    wait_for(lambda: request(server.url, "GET", "/api/health").status == 200)


def test_slow_clients_are_cut_off(running_server) -> None:
    server = running_server(upload_timeout_s=1.0, client_timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        start = time.monotonic()
        assert silent.recv(1024) == b""  # closed after client_timeout_s of silence
        assert time.monotonic() - start < 5
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as trickle:
        trickle.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n\r\n--abc\r\n"
        )
        start = time.monotonic()
        for _ in range(20):  # a byte every 0.2 s: never silent, never done
            time.sleep(0.2)
            try:
                trickle.sendall(b"x")
            except OSError:
                break
        reply = trickle.recv(65536).decode()
        assert time.monotonic() - start < 4  # the 1 s deadline, checked every 0.5 s
    assert reply.startswith("HTTP/1.1 408")
    assert "the upload did not arrive within 1 s" in reply
    assert request(server.url, "GET", "/api/health").status == 200


def test_limits_must_be_finite_and_positive() -> None:
    for field, value in (("max_duration_s", math.nan), ("max_wait_s", math.inf), ("max_queue", 0)):
        with pytest.raises(ConfigError, match=f"server limit {field}="):
            ServeLimits(**{field: value})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--max-duration", "nan"], "--max-duration nan: expected a finite number"),
        (["serve", "--max-wait", "inf"], "--max-wait inf: expected a finite number"),
        (["serve", "--max-upload-mb", "0"], "--max-upload-mb 0.0: expected a number above 0"),
        (["serve", "--port", "99999"], "--port 99999: expected an integer from 0 to 65535"),
        (["serve", "--max-frames", "0"], "--max-frames 0: expected an integer from 1"),
        (["serve", "--batch-size", "-3"], "--batch-size -3: expected an integer from 1"),
        (["predict", "x.mp4", "--fps", "nan"], "--fps nan: expected a finite number"),
        (["predict", "x.mp4", "--fps=-inf"], "--fps -inf: expected a finite number"),
    ],
)
def test_bad_numeric_options(argv: list[str], message: str, capsys, tmp_path: Path) -> None:
    # A missing checkpoint: the option is refused before anything is loaded.
    code = main([*argv, "--checkpoint", str(tmp_path / "none.safetensors")])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith(f"finecliper: error: {message}")
    assert len(error.strip().splitlines()) == 1


def test_port_in_use(capsys, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--checkpoint", str(tmp_path / "none")])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in error


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_stopped_mid_prediction_leaves_no_upload(
    tiny_checkpoint: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    work = tmp_path / "work"
    argv = ["serve", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--port", "0"]
    argv += ["--workdir", str(work), "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_MAIN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # 1000 frames: seconds of prediction, within the default limits.
    video = write_video(tmp_path / "long.mp4", astronaut_frames(1000, 64), 100).read_bytes()
    try:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
        assert match, process.stderr.read()
        url = f"http://127.0.0.1:{match.group(1)}"
        upload = Background(lambda: post_form(url, files={"video": ("long.mp4", video)}))
        wait_for(lambda: any((work / "uploads").iterdir()))
        time.sleep(0.5)  # checked and predicting
        assert upload.thread.is_alive()
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        assert "finecliper serve: stopped" in process.stderr.read()
        assert list((work / "uploads").iterdir()) == []
        upload.result()  # the client saw its connection end
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
