"""No dead settings: every config key is read somewhere in src/, or reserved here with a reason.

A key counts as read when the code outside the config definitions accesses it as an attribute
(``config.train.tensorboard``; imports, strings and comments do not count) or through ``getattr``
with an f-string naming a family of keys (``getattr(config, f"{modality}_adapter_ratio")``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel

import finecliper
from finecliper.config import Config, TrainConfig

SOURCE = Path(finecliper.__file__).parent
# The files that define the sections: a key named there is declared, not read.
DEFINITIONS = {"config.py", "config_base.py", "data/config.py", "model/config.py"}
# Keys that nothing reads on purpose, each with the reason; keep this empty where possible.
RESERVED: dict[str, str] = {}


def source_texts() -> list[str]:
    return [
        path.read_text(encoding="utf-8")
        for path in SOURCE.rglob("*.py")
        if str(path.relative_to(SOURCE)) not in DEFINITIONS
    ]


def config_keys(config: type[BaseModel]) -> list[str]:
    return [
        f"{section}.{key}"
        for section, field in config.model_fields.items()
        for key in field.annotation.model_fields
    ]


def reads(texts: list[str]) -> tuple[set[str], list[re.Pattern[str]]]:
    """Attribute names accessed in code (not in imports, strings or comments), and the key
    families that ``getattr(obj, f"...")`` reads, as patterns."""
    attributes: set[str] = set()
    families: list[re.Pattern[str]] = []
    for text in texts:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif _is_getattr(node) and isinstance(node.args[1], ast.JoinedStr):
                parts = [
                    re.escape(part.value) if isinstance(part, ast.Constant) else r"\w+"
                    for part in node.args[1].values
                ]
                families.append(re.compile("".join(parts)))
    return attributes, families


def _is_getattr(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
    )


def unread_keys(config: type[BaseModel], texts: list[str]) -> list[str]:
    attributes, families = reads(texts)
    unread = []
    for dotted in config_keys(config):
        key = dotted.split(".", 1)[1]
        read = key in attributes or any(family.fullmatch(key) for family in families)
        if not read and dotted not in RESERVED:
            unread.append(dotted)
    return unread


def test_every_config_key_is_read() -> None:
    assert unread_keys(Config, source_texts()) == []


def test_an_unused_key_is_caught() -> None:
    class PaddedTrain(TrainConfig):
        nobody_reads_this_key: bool = False

    class PaddedConfig(Config):
        train: PaddedTrain

    assert unread_keys(PaddedConfig, source_texts()) == ["train.nobody_reads_this_key"]


def test_a_key_read_through_a_getattr_family_counts() -> None:
    keys = {key.split(".", 1)[1] for key in config_keys(Config)}
    assert "video_adapter_ratio" in keys
    text = 'ratio = getattr(self.config, f"{modality}_adapter_ratio")'
    assert "model.video_adapter_ratio" not in unread_keys(Config, [text])
    assert "model.lambda_align" in unread_keys(Config, [text])


def test_reserved_keys_exist_and_give_a_reason() -> None:
    for key, reason in RESERVED.items():
        assert key in config_keys(Config) and reason.strip()
