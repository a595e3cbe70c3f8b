"""Description backends are chosen by name from a registry: new ones plug in with a decorator."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from finecliper.cli import main
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.text.backends import (
    BACKENDS,
    BackendOptions,
    ClipRequest,
    Reply,
    backend_names,
    create_backend,
    register_backend,
)


class EchoBackend:
    """Replies with the prompt: a backend defined outside the package."""

    name = "echo"
    revision = None
    needs_frames = False
    uses_prompt = True

    def __init__(self, model: str, options: BackendOptions) -> None:
        self.model_id = model

    def settings(self) -> dict[str, Any]:
        return {}

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]:
        return [Reply(request.prompt) for request in requests]

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        return [Reply(prompt) for prompt in prompts]


@pytest.fixture
def echo() -> Iterator[None]:
    register_backend("echo", default_model="echo-1")(EchoBackend)
    yield
    BACKENDS.unregister("echo")


def test_registered_backend_is_created_by_name(echo):
    backend = create_backend("echo", BackendOptions())
    assert backend.model_id == "echo-1"
    assert create_backend("echo", BackendOptions(model="echo-2")).model_id == "echo-2"
    assert backend.describe([ClipRequest("c1", "say this")]) == [Reply("say this")]


def test_registered_backend_is_a_cli_choice(echo, capsys):
    with pytest.raises(SystemExit):
        main(["describe", "--help"])
    assert "{echo,mafw-captions,openai-compatible,qwen2-vl,template,video-llava}" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        main(["refine", "--help"])
    assert "{echo,openai-compatible,qwen2-vl,video-llava}" in capsys.readouterr().out


def test_template_cannot_judge_and_defaults_stay():
    assert "template" in backend_names()
    assert "template" not in backend_names(judge=True)
    assert BACKENDS.info("qwen2-vl")["default_model"] == "Qwen/Qwen2-VL-7B-Instruct"
    assert BACKENDS.info("video-llava")["default_model"] == "LanguageBind/Video-LLaVA-7B-hf"


def test_unknown_and_duplicate_backends_are_refused():
    with pytest.raises(
        ConfigError, match=r"unknown backend 'gpt' \(choose from mafw-captions, openai-comp"
    ):
        create_backend("gpt", BackendOptions())
    with pytest.raises(FineCLIPERError, match="backend 'template' is registered twice"):
        register_backend("template", default_model="x")(EchoBackend)


def test_listing_backends_imports_none_of_them():
    code = (
        "import sys; from finecliper.text.backends import backend_names; print(backend_names());"
        " print(sorted(m for m in sys.modules if m.startswith('finecliper.text.backends.')),"
        " 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "('mafw-captions', 'openai-compatible', 'qwen2-vl', 'template', 'video-llava')",
        "[] False",
    ]
