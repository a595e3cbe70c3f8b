"""Helpers shared by the bench tests (a plain module: ``conftest`` names clash across folders)."""

from __future__ import annotations

from pathlib import Path

from finecliper.data.pack.plan import PackSources

SHARD_CLIPS = 4


def synth_sources(root: Path) -> PackSources:
    return PackSources(synth_middle=True, descriptions=root / "descriptions.jsonl")
