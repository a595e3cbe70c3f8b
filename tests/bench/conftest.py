"""A tiny SynthDFER and its packs (JPEG and raw frames), shared by the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from pack_fixtures import SHARD_CLIPS, synth_sources

from finecliper.data.pack.format import PackSettings
from finecliper.data.pack.write import pack_dataset
from finecliper.data.synth import generate_synth, read_synth


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-synth")
    generate_synth(out, clips=10, seed=3, size=32, frames=6, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def synth_packs(synth_root: Path, tmp_path_factory) -> dict[str, Path]:
    """Frame format -> pack of the tiny SynthDFER (shards of 4 clips)."""
    folder = tmp_path_factory.mktemp("bench-packs")
    index = read_synth(synth_root)
    packs = {}
    for frame_format in ("jpeg", "raw"):
        packs[frame_format] = folder / frame_format
        pack_dataset(
            index,
            packs[frame_format],
            settings=PackSettings(frame_format=frame_format, shard_clips=SHARD_CLIPS),
            sources=synth_sources(synth_root),
            progress=False,
        )
    return packs
