"""Parameter budgets at ViT-B/16 (docs/method.md 2.6/2.7), the summary command and model config."""

from __future__ import annotations

import json
import time

import pytest

from finecliper.cli import main
from finecliper.config import load_config
from finecliper.errors import ConfigError
from finecliper.model.summary import PAPER_TUNABLE, format_summary, summarize_parameters

VIT_B16 = "openai/clip-vit-base-patch16"
VIT_B16_FROZEN = 149_620_737  # CLIP ViT-B/16 as published


@pytest.mark.parametrize("variant", ["base", "mid", "high", "full"])
def test_tunable_counts_are_within_1_5m_of_the_paper(variant: str) -> None:
    start = time.perf_counter()
    summary = summarize_parameters(variant, VIT_B16)
    assert time.perf_counter() - start < 5.0  # meta device: no weights, no memory
    assert abs(summary["tunable_params"] - PAPER_TUNABLE[variant]) <= 1_500_000
    assert summary["frozen_params"] == VIT_B16_FROZEN
    components = summary["components"]
    assert components["frozen_backbone"] == VIT_B16_FROZEN
    assert sum(components.values()) == summary["tunable_params"] + summary["frozen_params"]


def test_components_follow_the_method_arithmetic() -> None:
    components = summarize_parameters("full", VIT_B16)["components"]
    assert components["video_adapters"] == 2 * 12 * 295_872
    assert components["parsing_adapters"] == components["landmark_adapters"] == 2 * 12 * 148_320
    for name in ("label_positive_adapters", "label_negative_adapters", "text_adapters"):
        assert components[name] == 12 * 131_712
    assert 2_000_000 < components["temporal"] < 2_200_000
    base = summarize_parameters("base", VIT_B16)["components"]
    assert base["parsing_adapters"] == base["text_adapters"] == 0


def test_summary_command_prints_json_and_table(capsys) -> None:
    assert main(["model", "summary", "--variant", "mid", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"variant", "backbone", "tunable_params", "frozen_params", "components"}
    assert printed["variant"] == "mid" and printed["backbone"] == VIT_B16
    assert printed == summarize_parameters("mid", VIT_B16)
    assert main(["model", "summary", "--variant", "full"]) == 0
    table = capsys.readouterr().out
    assert "FineCLIPER*†" in table and "20,000,000" in table and "21,073,409" in table


def test_other_backbones_count_without_weights() -> None:
    large = summarize_parameters("base", "ViT-L/14")
    small = summarize_parameters("base", "ViT-B/32")
    assert large["tunable_params"] > small["tunable_params"]
    assert "paper" not in format_summary(large)


def test_unknown_backbone_fails_clearly(capsys) -> None:
    assert main(["model", "summary", "--backbone", "./no/such/dir"]) == 1
    assert "no such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.positive_template=A face.", "no {label} placeholder"),
        ("model.negative_template=Not {label} {mood}.", "unknown placeholders"),
        ("model.temporal_mlp_ratio=0", "greater than 0"),
        ("model.text_adapter_position=side", "'attention' or 'mlp'"),
    ],
)
def test_model_config_rejects_bad_values(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_change_tokens_need_the_temporal_transformer() -> None:
    with pytest.raises(ConfigError, match=r"temporal_motion needs model\.temporal=transformer"):
        load_config(None, ["model.temporal=mean", "model.temporal_motion=true"])
    assert load_config(None, ["model.temporal_motion=true"]).model.temporal_motion
