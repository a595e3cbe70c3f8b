"""``describe mafw ROOT --backend mafw-captions``: MAFW's own English captions as descriptions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from finecliper.data.classes import MAFW_CLASSES
from finecliper.errors import ConfigError
from finecliper.text.backends import BackendOptions, ClipRequest, create_backend
from finecliper.text.backends.mafw_captions import english_caption
from finecliper.text.commands import register
from finecliper.text.descriptions import load_descriptions

ZH = "一名男子皱着眉头，嘴角向下。"
CLIPS = [f"{n:05d}" for n in range(19, 29)]  # ten clips, two test clips per fold


def english(clip_id: str) -> str:
    return f"A man in clip {clip_id} frowns and the corners of his mouth turn down."


def caption_fields(clip_id: str) -> str:
    return ZH if clip_id == CLIPS[-1] else f"{ZH}\t{english(clip_id)}"  # the last has no English


def build_mafw_with_captions(root: Path) -> Path:
    """MAFW's with_caption and no_caption lists (GBK, CRLF as released) and frame folders."""
    for clip_id in CLIPS:
        frames = root / "data" / "frames" / "frames_crop_align_224" / clip_id
        frames.mkdir(parents=True)
    labels = {c: MAFW_CLASSES[i % len(MAFW_CLASSES)] for i, c in enumerate(CLIPS)}
    lists = root / "Train & Test Set" / "single"
    for fold in range(1, 6):
        test = set(CLIPS[2 * (fold - 1) : 2 * fold])
        for split in ("train", "test"):
            members = [c for c in CLIPS if (c in test) == (split == "test")]
            captioned = "".join(f"{c}.mp4\t{labels[c]}\t{caption_fields(c)}\r\n" for c in members)
            plain = "".join(f"{c}.mp4 {labels[c]}\n" for c in members)
            for variant, text, encoding in (
                ("with_caption", captioned, "gbk"),
                ("no_caption", plain, "utf-8"),
            ):
                path = lists / variant / f"set_{fold}" / f"{split}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text.encode(encoding))
    return root


def test_english_field_is_picked_from_the_caption_fields() -> None:
    assert english_caption(f"{ZH}\tHe frowns.") == "He frowns."
    assert english_caption(f"He frowns.\t{ZH}") == "He frowns."
    assert english_caption(ZH) is None
    assert english_caption("") is None


def test_describe_writes_the_english_captions_as_label_free_descriptions(tmp_path, capsys):
    root = build_mafw_with_captions(tmp_path / "mafw")
    out = tmp_path / "captions.jsonl"
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["describe", "mafw", str(root), "--backend", "mafw-captions", "--out", str(out), "--json"]
    )
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["described"], summary["errors"]) == (len(CLIPS) - 1, 1)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(row["clip_id"] for row in rows) == CLIPS
    assert not any(row["label_shown"] for row in rows)
    assert {row["backend"] for row in rows} == {"mafw-captions"}
    missing = next(row for row in rows if row["clip_id"] == CLIPS[-1])
    assert missing["text"] is None and "no English caption" in missing["error"]
    # Label-free, so test clips get their captions too: the Table 3 row evaluates on them.
    descriptions = load_descriptions(out, split="fold1/test")
    assert descriptions == {c: english(c) for c in CLIPS[:-1]}


def test_a_root_without_caption_lists_is_named(tmp_path) -> None:
    options = BackendOptions(dataset_root=tmp_path)
    with pytest.raises(ConfigError, match=f"needs a MAFW root with captions: {tmp_path}"):
        create_backend("mafw-captions", options)
    backend = create_backend(
        "mafw-captions", BackendOptions(dataset_root=build_mafw_with_captions(tmp_path / "m"))
    )
    (reply,) = backend.describe([ClipRequest("99999", "")])
    assert reply.text is None and "not in MAFW's with_caption lists" in reply.error
