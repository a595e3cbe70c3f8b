"""``finecliper serve`` over HTTP: predictions, result files, limits, bad uploads, path traversal,
and the server staying up after each refusal."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from serve_fixtures import (
    SERVE_MAIN,
    RunningServer,
    astronaut_frames,
    post_form,
    request,
    write_video,
)

from finecliper.serve.limits import ServeLimits
from finecliper.serve.multipart import FormError, form_boundary, parse_form
from finecliper.serve.web import ServeApp

LIMITS = {"max_upload_bytes": 300_000, "max_duration_s": 3.0}


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> bytes:
    """2 s of the moving astronaut at 10 fps, 128 px: within the test limits."""
    path = tmp_path_factory.mktemp("web") / "short.mp4"
    return write_video(path, astronaut_frames(20, 128), 10).read_bytes()


@pytest.fixture(scope="module")
def server(predictor, tmp_path_factory):
    """One server for the tests that need no special limits (its folder: <tmp>/work)."""
    app = ServeApp(predictor, tmp_path_factory.mktemp("web") / "work", ServeLimits(**LIMITS))
    running = RunningServer(app)
    yield running
    running.close()


def assert_alive(url: str) -> None:
    answer = request(url, "GET", "/api/health")
    assert answer.status == 200 and answer.json() == {"status": "ok"}


def test_page_and_config(server) -> None:
    page = request(server.url, "GET", "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b'id="predict-form"' in page.body and b'id="top-class"' in page.body
    config = request(server.url, "GET", "/api/config").json()
    assert config["classes"][0] == "Happy" and config["limits"]["max_duration_s"] == 3.0
    assert len(config["samples"]) == 7 and {"name", "label"} <= set(config["samples"][0])
    assert_alive(server.url)


def test_upload_predicts_and_serves_results(server, short_video: bytes) -> None:
    answer = post_form(server.url, files={"video": ("my clip.mp4", short_video)})
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["video"] == "my clip.mp4"  # shown, never used as a path
    assert result["settings"]["checkpoint"] == "tiny.safetensors"
    assert str(server.app.workdir).encode() not in answer.body  # no server paths leak
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
    assert result["timeline"][-1]["end_s"] == pytest.approx(2.0)
    assert result["face_found"]
    video = request(server.url, "GET", result["urls"]["annotated_video"])
    assert video.status == 200 and video.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(video.body)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 20
    plot = request(server.url, "GET", result["urls"]["timeline_plot"])
    assert Image.open(io.BytesIO(plot.body)).format == "PNG"
    saved = request(server.url, "GET", result["urls"]["result"]).json()
    assert saved["probabilities"] == result["probabilities"]
    part = request(
        server.url, "GET", result["urls"]["annotated_video"], headers={"Range": "bytes=10-29"}
    )
    assert part.status == 206 and part.body == video.body[10:30]
    assert part.headers["Content-Range"] == f"bytes 10-29/{len(video.body)}"
    # The upload itself is gone once predicted; the results stay.
    assert list((server.app.workdir / "uploads").iterdir()) == []


def test_sample_prediction(server) -> None:
    answer = post_form(server.url, fields={"sample": "synth_00002"})
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["sample_label"] == server.app.samples["synth_00002"].label
    assert result["settings"]["face_crop"] is False and result["num_frames"] == 32


@pytest.mark.parametrize(
    ("upload", "status", "message"),
    [
        (
            {"files": {"video": ("notes.txt", b"hello")}},
            415,
            "'notes.txt' is not an accepted video",
        ),
        (
            {"files": {"video": ("fake.mp4", b"\x00garbage" * 500)}},
            400,
            "'fake.mp4' is not a readable video",
        ),
        ({"files": {"video": ("empty.mov", b"")}}, 400, "'empty.mov' is empty"),
        ({"fields": {"note": "x"}}, 400, "choose a video file to upload"),
        ({"files": {"video": ("", b"")}}, 400, "choose a video file to upload"),
        ({"fields": {"sample": "../../etc"}}, 400, "no sample named '../../etc'"),
    ],
)
def test_bad_uploads_are_refused(server, upload, status, message) -> None:
    answer = post_form(server.url, **upload)
    assert answer.status == status
    assert message in answer.json()["error"]
    assert_alive(server.url)
    assert list((server.app.workdir / "uploads").iterdir()) == []


def test_too_long_and_too_wide_videos(running_server, tmp_path: Path) -> None:
    server = running_server(max_side=64, **LIMITS)
    long = write_video(tmp_path / "long.mp4", np.zeros((40, 32, 32, 3), np.uint8), 10)
    wide = write_video(tmp_path / "wide.mp4", np.zeros((5, 32, 96, 3), np.uint8), 10)
    answer = post_form(server.url, files={"video": ("long.mp4", long.read_bytes())})
    assert answer.status == 400
    assert answer.json()["error"] == "'long.mp4' is 4.0 s long; the limit is 3 s"
    answer = post_form(server.url, files={"video": ("wide.mp4", wide.read_bytes())})
    assert answer.status == 400 and "96x32 pixels; the limit is 64 pixels" in answer.json()["error"]
    assert_alive(server.url)


def test_malformed_requests(server) -> None:
    cases = [
        ({"Content-Type": "application/json"}, b"{}", 400, "expected a multipart/form-data"),
        ({"Content-Type": "multipart/form-data"}, b"x", 400, "no valid boundary"),
        (
            {"Content-Type": "multipart/form-data; boundary=abc"},
            b'--abc\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n123',
            400,
            "ends before its closing boundary",
        ),
    ]
    for headers, body, status, message in cases:
        answer = request(server.url, "POST", "/api/predict", body, headers)
        assert answer.status == status and message in answer.json()["error"]
    assert request(server.url, "POST", "/api/other", b"", {}).status == 404
    assert request(server.url, "GET", "/nothing/here").status == 404
    assert_alive(server.url)


def test_too_large_uploads(server) -> None:
    # Just over the limit: the body is read and dropped, the client gets a clean 413.
    answer = post_form(server.url, files={"video": ("big.mp4", b"\x00" * 400_000)})
    assert (
        answer.status == 413
        and "the upload is 0.4 MB; the limit is 0.3 MB" in answer.json()["error"]
    )
    # Far over the limit: answered from the headers alone, without reading the body.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n\r\n--abc\r\n"
        )
        reply = connection.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 413") and "Connection: close" in reply
    assert_alive(server.url)


def test_no_path_traversal(server, short_video: bytes) -> None:
    root = server.app.workdir.parent
    before = {p for p in root.rglob("*")}
    answer = post_form(server.url, files={"video": ("../../../evil.mp4", short_video)})
    assert answer.status == 200 and answer.json()["video"] == "evil.mp4"
    result_id = answer.json()["id"]
    secret = server.app.workdir / "results" / result_id / "secret.txt"
    secret.write_text("not served")
    for path in (
        "/results/../../etc/passwd",
        "/results/%2e%2e/%2e%2e/etc/passwd",
        f"/results/{result_id}/../../../etc/passwd",
        f"/results/{result_id}/secret.txt",
        f"/results/{result_id}/%2e%2e%2fsecret.txt",
        f"/results/{result_id.upper()}/result.json",
        "/results/0123456789abcdef0123456789abcdef/result.json",
        "//etc/passwd",
        "/../../etc/passwd",
    ):
        answer = request(server.url, "GET", path)
        assert answer.status == 404, path
        assert b"root:" not in answer.body
    # Every file written lies in the working folder, none carries the uploaded name.
    written = {p for p in root.rglob("*")} - before
    workdir = server.app.workdir
    assert all(p.is_relative_to(workdir) for p in written)
    assert not [p for p in root.parent.rglob("evil*")]  # where ../../../ would lead
    assert_alive(server.url)


def test_results_are_pruned(running_server, short_video: bytes, tmp_path: Path) -> None:
    server = running_server(tmp_path / "pruned", max_results=2, **LIMITS)
    results = server.app.workdir / "results"
    old = []
    for age, name in ((300, "a" * 32), (200, "b" * 32)):  # two earlier results
        (results / name).mkdir()
        (results / name / "result.json").write_text("{}")
        os.utime(results / name, (time.time() - age, time.time() - age))
        old.append(name)
    answer = post_form(server.url, files={"video": ("clip.mp4", short_video)})
    kept = sorted(p.name for p in results.iterdir())
    assert kept == sorted([old[1], answer.json()["id"]])  # the oldest one is gone
    assert request(server.url, "GET", f"/results/{old[0]}/result.json").status == 404
    assert request(server.url, "GET", f"/results/{old[1]}/result.json").status == 200


def test_multipart_parser() -> None:
    boundary = form_boundary('multipart/form-data; boundary="b-1"')
    body = (
        b'preamble\r\n--b-1\r\nContent-Disposition: form-data; name="video"; '
        b"filename*=UTF-8''caf%C3%A9.mp4\r\n\r\n\r\n-b-1 --b binary\r\n\r\n--b-1\r\n"
        b'Content-Disposition: form-data; name="sample"\r\n\r\nsynth_00001\r\n--b-1--\r\n'
    )
    parts = parse_form(body, boundary)
    assert parts["video"].filename == "café.mp4"
    assert parts["video"].data == b"\r\n-b-1 --b binary\r\n"  # CRLF and lookalikes kept as data
    assert parts["sample"].filename is None and parts["sample"].text() == "synth_00001"
    with pytest.raises(FormError, match="no field name"):
        parse_form(b"--b-1\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b-1--", boundary)
    many = b"".join(
        b'--b-1\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(20)
    )
    with pytest.raises(FormError, match="more than 16 fields"):
        parse_form(many + b"--b-1--", boundary)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell script's background job has it


@pytest.mark.parametrize(
    ("stop", "inherited"),
    [(signal.SIGINT, None), (signal.SIGINT, _ignore_sigint), (signal.SIGTERM, None)],
    ids=["ctrl-c", "ctrl-c-in-background-job", "kill"],
)
def test_serve_command_starts_and_stops(
    tiny_checkpoint: Path, tmp_path: Path, stop: signal.Signals, inherited
) -> None:
    argv = ["serve", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--port", "0"]
    argv += ["--workdir", str(tmp_path / "cli-work"), "--max-upload-mb", "1", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_MAIN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=inherited,
    )
    try:
        line = process.stdout.readline()  # printed once the server listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        url = f"http://127.0.0.1:{match.group(1)}"
        assert_alive(url)
        config = request(url, "GET", "/api/config").json()
        assert config["limits"]["max_upload_bytes"] == 2**20
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        assert "finecliper serve: stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
