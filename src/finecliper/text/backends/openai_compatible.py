"""Any chat-completions server with image input (a vLLM deployment, for example).

Each clip is one ``POST {base_url}/chat/completions`` whose user message holds the prompt and the
sampled frames as JPEG data URLs. Requests run concurrently on a thread pool; connection errors,
timeouts, HTTP 429 and 5xx are retried with exponential backoff; any other HTTP error and a reply
that is not a chat completion (malformed JSON, no ``choices``) become that clip's error, and the
job goes on. The API key, if the server wants one, is read from an environment variable.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from finecliper.errors import ConfigError
from finecliper.text.backends import BackendOptions, ClipRequest, Reply, register_backend

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failure worth another attempt (network, timeout, overload)."""


@register_backend("openai-compatible", default_model="Qwen/Qwen2-VL-7B-Instruct")
class OpenAICompatibleBackend:
    name = "openai-compatible"
    needs_frames = True
    uses_prompt = True

    def __init__(self, model: str, options: BackendOptions):
        if options.concurrency < 1 or options.retries < 0 or options.timeout_s <= 0:
            raise ConfigError(
                "openai-compatible: need concurrency >= 1, retries >= 0 and a positive timeout"
            )
        self.model_id = model
        self.revision = options.revision
        self.options = options
        self.url = options.base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(options.api_key_env, "")

    def settings(self) -> dict[str, Any]:
        return {
            "max_tokens": self.options.max_new_tokens,
            "temperature": self.options.temperature,
            "base_url": self.options.base_url,
            "image_format": f"jpeg q{self.options.jpeg_quality}",
            "timeout_s": self.options.timeout_s,
            "retries": self.options.retries,
        }

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]:
        return self._run([self._clip_content(r) for r in requests])

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        return self._run([[{"type": "text", "text": prompt}] for prompt in prompts])

    def _clip_content(self, request: ClipRequest) -> list[dict[str, Any]]:
        if request.frames is None:
            raise ValueError(f"openai-compatible needs frames; none given for {request.clip_id}")
        images = [
            {"type": "image_url", "image_url": {"url": _data_url(frame, self.options.jpeg_quality)}}
            for frame in request.frames
        ]
        return [*images, {"type": "text", "text": request.prompt}]

    def _run(self, contents: list[list[dict[str, Any]]]) -> list[Reply]:
        workers = min(self.options.concurrency, max(1, len(contents)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._request_with_retries, contents))

    def _payload(self, content: list[dict[str, Any]]) -> bytes:
        body = {
            "model": self.model_id,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.options.max_new_tokens,
            "temperature": self.options.temperature,
        }
        return json.dumps(body).encode("utf-8")

    def _request_with_retries(self, content: list[dict[str, Any]]) -> Reply:
        payload = self._payload(content)
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            try:
                return self._request(payload)
            except _Retryable as exc:
                if attempt + 1 == attempts:
                    return Reply(None, f"{exc} (gave up after {attempts} attempts)")
                # Exponential backoff with a little jitter so concurrent retries spread out.
                delay = self.options.backoff_s * 2**attempt
                time.sleep(delay * (1.0 + 0.1 * random.random()))
        raise AssertionError("unreachable")

    def _request(self, payload: bytes) -> Reply:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.options.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            message = f"HTTP {exc.code} from {self.url}: {detail}"
            if exc.code in _RETRY_STATUS:
                raise _Retryable(message) from exc
            return Reply(None, message)
        except TimeoutError as exc:
            raise _Retryable(f"timed out after {self.options.timeout_s:g} s ({self.url})") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(
                    f"timed out after {self.options.timeout_s:g} s ({self.url})"
                ) from exc
            raise _Retryable(f"cannot reach {self.url}: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection to {self.url} failed: {exc!r}") from exc
        return parse_completion(body)


def parse_completion(body: bytes) -> Reply:
    """The assistant text of a chat-completions reply, or an error saying what is malformed."""
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Reply(None, f"malformed reply (not JSON: {exc}): {body[:120]!r}")
    except (KeyError, IndexError, TypeError):
        return Reply(None, f"malformed reply (no choices[0].message.content): {body[:120]!r}")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        return Reply(None, f"malformed reply (empty or non-text content): {body[:120]!r}")
    return Reply(content.strip())


def _data_url(frame: np.ndarray, quality: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
