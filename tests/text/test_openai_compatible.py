"""The openai-compatible backend against a chat-completions server started on 127.0.0.1."""

import argparse
import base64
import io
import json
import time

import numpy as np
from PIL import Image
from text_fixtures import ChatServer, completion, make_video_dataset, prompt_of

from finecliper.text.backends import BackendOptions, ClipRequest
from finecliper.text.backends.openai_compatible import OpenAICompatibleBackend
from finecliper.text.commands import register


def _backend(url, **overrides):
    settings = {"timeout_s": 5.0, "retries": 1, "backoff_s": 0.01, **overrides}
    options = BackendOptions(base_url=url, **settings)
    return OpenAICompatibleBackend("served-model", options)


def _frames(count=8):
    return np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def test_request_carries_prompt_frames_and_settings(monkeypatch):
    monkeypatch.setenv("FINECLIPER_TEST_KEY", "secret-token")
    with ChatServer(lambda payload: (200, completion("  The brows rise. "), 0)) as server:
        backend = _backend(server.url, api_key_env="FINECLIPER_TEST_KEY", max_new_tokens=77)
        replies = backend.describe([ClipRequest("a", "describe the face", _frames())])
    assert replies[0].text == "The brows rise." and replies[0].error is None
    payload, headers = server.requests[0]
    assert payload["model"] == "served-model" and payload["max_tokens"] == 77
    assert payload["temperature"] == 0.0
    assert headers["Authorization"] == "Bearer secret-token"
    content = payload["messages"][0]["content"]
    images = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert len(images) == 8 and prompt_of(payload) == "describe the face"
    jpeg = base64.b64decode(images[0].removeprefix("data:image/jpeg;base64,"))
    assert Image.open(io.BytesIO(jpeg)).size == (32, 32)


def test_requests_run_concurrently():
    with ChatServer(lambda payload: (200, completion("ok"), 0.3)) as server:
        backend = _backend(server.url, concurrency=4)
        start = time.perf_counter()
        replies = backend.describe([ClipRequest(str(i), str(i), _frames(2)) for i in range(8)])
        elapsed = time.perf_counter() - start
    assert [r.text for r in replies] == ["ok"] * 8
    assert server.max_active == 4
    assert elapsed < 1.5  # 8 x 0.3 s one at a time would take 2.4 s


def _flaky_server():
    attempts: dict[str, int] = {}

    def respond(payload):
        prompt = prompt_of(payload)
        attempts[prompt] = attempts.get(prompt, 0) + 1
        if prompt == "slow":
            return 200, completion("too late"), 1.0
        if prompt == "garbage":
            return 200, b"<html>proxy error</html>", 0
        if prompt == "no-choices":
            return 200, b'{"choices": []}', 0
        if prompt == "overloaded-once" and attempts[prompt] == 1:
            return 503, b'{"error": "busy"}', 0
        if prompt == "bad-request":
            return 400, b'{"error": "image too large"}', 0
        return 200, completion(f"described {prompt}"), 0

    return respond, attempts


def test_timeouts_malformed_replies_and_retries_are_per_clip():
    respond, attempts = _flaky_server()
    prompts = ["slow", "garbage", "no-choices", "overloaded-once", "bad-request", "fine"]
    with ChatServer(respond) as server:
        backend = _backend(server.url, timeout_s=0.3)
        replies = backend.describe([ClipRequest(p, p, _frames(2)) for p in prompts])
    by_prompt = dict(zip(prompts, replies, strict=True))
    assert "timed out after 0.3 s" in by_prompt["slow"].error
    assert "gave up after 2 attempts" in by_prompt["slow"].error
    assert "malformed reply (not JSON" in by_prompt["garbage"].error
    assert "malformed reply (no choices" in by_prompt["no-choices"].error
    assert by_prompt["overloaded-once"].text == "described overloaded-once"
    assert "HTTP 400" in by_prompt["bad-request"].error
    assert by_prompt["fine"].text == "described fine"
    # Timeouts and 503 are retried; malformed replies and 400 are not.
    assert attempts == {
        "slow": 2,
        "garbage": 1,
        "no-choices": 1,
        "overloaded-once": 2,
        "bad-request": 1,
        "fine": 1,
    }


def test_unreachable_server_is_an_error_per_clip():
    with ChatServer(lambda payload: (200, completion("x"), 0)) as server:
        url = server.url
    reply = _backend(url, retries=0).complete(["anything"])[0]
    assert reply.text is None and "cannot reach" in reply.error


def test_llm_judge_completion_is_text_only():
    with ChatServer(lambda payload: (200, completion("Sad"), 0)) as server:
        replies = _backend(server.url).complete(["Which expression?"])
    assert replies[0].text == "Sad"
    assert server.requests[0][0]["messages"][0]["content"] == [
        {"type": "text", "text": "Which expression?"}
    ]


def _run_describe(manifest, out, url):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "describe",
            "custom",
            str(manifest),
            "--out",
            str(out),
            "--backend",
            "openai-compatible",
            "--url",
            url,
            "--model",
            "served-model",
            "--timeout",
            "0.3",
            "--retries",
            "0",
            "--concurrency",
            "2",
            "--batch-size",
            "4",
            "--json",
        ]
    )
    assert args.handler(args) == 0


def test_describe_cli_records_a_timeout_and_fills_it_in_on_rerun(tmp_path, capsys):
    clips = [("a", "Happy", "train"), ("b", "Sad", "train"), ("c", "Sad", "test")]
    manifest = make_video_dataset(tmp_path / "data", clips, frames=12)
    out = tmp_path / "out.jsonl"

    def stalls_on_test_clips(payload):
        shows_label = "human-annotation:" in prompt_of(payload)
        return 200, completion("The mouth opens."), 0 if shows_label else 1.0

    with ChatServer(stalls_on_test_clips) as server:
        _run_describe(manifest, out, server.url)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["described"], summary["errors"]) == (2, 1)
    rows = {r["clip_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "timed out" in rows["c.mp4"]["error"] and rows["c.mp4"]["label_shown"] is False
    assert rows["a.mp4"]["text"] == "The mouth opens." and rows["a.mp4"]["label_shown"] is True
    assert rows["a.mp4"]["generation"]["max_tokens"] == 100
    assert len(server.requests[0][0]["messages"][0]["content"]) == 9  # 8 frames + prompt

    with ChatServer(lambda payload: (200, completion("The head turns."), 0)) as server:
        _run_describe(manifest, out, server.url)
    assert len(server.requests) == 1  # only the failed clip is asked again
    rows = {r["clip_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["c.mp4"]["text"] == "The head turns." and rows["c.mp4"]["error"] is None
    assert len(rows) == 3 and len(out.read_text().splitlines()) == 3
