"""Tiny random Video-LLaVA and Qwen2-VL models describe real H.264 clips end to end."""

import argparse
import json

import numpy as np
import pytest
import torch
from text_fixtures import clip_frames, make_video_dataset, tiny_qwen2_vl, tiny_video_llava

from finecliper.data.sampling import segment_indices
from finecliper.text.backends import BackendOptions, ClipRequest
from finecliper.text.backends.hf import CLIP_MEAN, CLIP_STD, normalize
from finecliper.text.backends.qwen2_vl import Qwen2VLBackend, patchify, smart_size
from finecliper.text.backends.video_llava import VideoLlavaBackend
from finecliper.text.commands import register
from finecliper.text.prompts import FIG3_LABELLED

CLIPS = [("happy1", "Happy", "train"), ("sad1", "Sad", "train"), ("sad2", "Sad", "test")]
OPTIONS = BackendOptions(device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("mllm")
    manifest = make_video_dataset(root / "data", CLIPS)
    (root / "data" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write("broken.mp4,Happy,test\n")
    torch.manual_seed(0)
    return {
        "manifest": manifest,
        "video-llava": tiny_video_llava(root / "video_llava"),
        "qwen2-vl": tiny_qwen2_vl(root / "qwen2_vl"),
        "out": root,
    }


def _describe(workspace, backend, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = workspace["out"] / f"{backend}.jsonl"
    args = parser.parse_args(
        [
            "describe",
            "custom",
            str(workspace["manifest"]),
            "--out",
            str(out),
            "--backend",
            backend,
            "--model",
            str(workspace[backend]),
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--max-new-tokens",
            "6",
            "--json",
        ]
    )
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["clip_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    return summary, rows


@pytest.mark.parametrize("backend", ["video-llava", "qwen2-vl"])
def test_describe_real_videos_end_to_end(workspace, backend, capsys):
    summary, rows = _describe(workspace, backend, capsys)
    assert (summary["described"], summary["errors"]) == (3, 1)
    assert set(rows) == {"happy1.mp4", "sad1.mp4", "sad2.mp4", "broken.mp4"}
    for clip_id, row in rows.items():
        assert row["backend"] == backend and row["model"] == str(workspace[backend])
        if clip_id == "broken.mp4":
            assert row["text"] is None and "broken.mp4" in row["error"]
            continue
        assert isinstance(row["text"], str) and row["text"].strip() and row["error"] is None
        assert row["frame_indices"] == segment_indices(16, 8, train=False)
        assert row["label_shown"] == (row["split"] == "train")
        assert row["prompt_id"] == ("fig3-label" if row["split"] == "train" else "fig3-nolabel")
        assert row["generation"]["max_new_tokens"] == 6 and row["generation"]["do_sample"] is False


def test_video_llava_inputs_match_the_processor_layout(workspace):
    backend = VideoLlavaBackend.load(str(workspace["video-llava"]), OPTIONS)
    assert (backend.shortest_edge, backend.crop) == (56, (56, 56))
    frames = [clip_frames(8, 64, seed=s) for s in (1, 2)]
    prompts = [FIG3_LABELLED.render("Happy"), "short prompt"]
    inputs = backend.build_inputs(
        [ClipRequest(f"c{i}", p, f) for i, (p, f) in enumerate(zip(prompts, frames, strict=True))]
    )
    video_id = backend.model.config.video_token_id
    # 8 frames x (4 x 4 patches + CLS) placeholders in every row, prompts left-padded.
    assert (inputs["input_ids"] == video_id).sum(dim=1).tolist() == [8 * 17, 8 * 17]
    assert inputs["attention_mask"][1, 0] == 0 and inputs["attention_mask"][:, -1].all()
    assert inputs["input_ids"].shape[1] % 64 == 0
    assert inputs["pixel_values_videos"].shape == (2, 8, 3, 56, 56)
    # 64 px frames scaled to 56 and normalised like CLIP: a flat colour stays flat.
    flat = np.full((8, 64, 80, 3), 128, np.uint8)
    pixels = backend.pixel_values([ClipRequest("flat", "", flat)])
    expected = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(pixels[0, 0, :, 28, 28], expected, atol=1e-4)
    assert pixels.shape == (1, 8, 3, 56, 56)


def test_qwen2_vl_patches_match_transformers_image_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
        smart_resize,
    )

    for height, width in ((64, 64), (224, 224), (180, 320), (1080, 1920)):
        for low, high in ((56 * 56, 28 * 28 * 1280), (128 * 28 * 28, 768 * 28 * 28)):
            assert smart_size(height, width, 28, low, high) == smart_resize(
                height, width, 28, low, high
            )
    image = np.random.default_rng(0).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    reference = Qwen2VLImageProcessorPil()(
        images=[image],
        return_tensors="pt",
        size={"shortest_edge": 56 * 84, "longest_edge": 56 * 84},
    )
    # A still image is a two-frame clip of one temporal patch.
    frames = torch.from_numpy(image).permute(2, 0, 1)[None].float().repeat(2, 1, 1, 1)
    flat, grid = patchify(normalize(frames, CLIP_MEAN, CLIP_STD), 14, 2, 2)
    assert list(grid) == reference["image_grid_thw"][0].tolist()
    assert torch.allclose(flat, reference["pixel_values"], atol=1e-5)


def test_qwen2_vl_video_tokens_follow_the_grid(workspace):
    backend = Qwen2VLBackend.load(str(workspace["qwen2-vl"]), OPTIONS)
    inputs = backend.build_inputs([ClipRequest("a", "describe", clip_frames(7, 64, seed=3))])
    # 7 frames -> padded to 8 -> 4 temporal patches; 64 px -> 56 px -> 4 x 4 patches.
    assert inputs["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert inputs["pixel_values_videos"].shape == (64, 3 * 2 * 14 * 14)
    video_id = backend.model.config.video_token_id
    assert int((inputs["input_ids"] == video_id).sum()) == 4 * 4 * 4 // 4


@pytest.mark.parametrize(
    ("cls", "backend"), [(VideoLlavaBackend, "video-llava"), (Qwen2VLBackend, "qwen2-vl")]
)
def test_text_only_completion_for_the_llm_judge(workspace, cls, backend):
    model = cls.load(str(workspace[backend]), OPTIONS)
    replies = model.complete(["Which expression: Happy or Sad?", "Answer with one word."])
    assert len(replies) == 2
    assert all((r.text is None) != (r.error is None) for r in replies)
