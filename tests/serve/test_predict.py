"""``Predictor`` and ``finecliper predict`` on real videos: a moving astronaut (H.264), a SynthDFER
clip, noise without a face, corrupt files; and the input path checked against training's."""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from serve_fixtures import (
    ASTRONAUT_FPS,
    ASTRONAUT_FRAMES,
    astronaut_frames,
    astronaut_offsets,
    write_video,
)

from finecliper.assets_paths import DEMO_BACKBONE_NAME
from finecliper.data.classes import DFEW_CLASSES
from finecliper.data.dataset import ClipDataset, cache_middle_locator, collate_clips
from finecliper.data.records import ClipRecord
from finecliper.data.transforms import ClipTransform
from finecliper.data.video import read_frames
from finecliper.errors import FineCLIPERError
from finecliper.face.analysis import FacesSettings, FaceTools
from finecliper.face.extract import process_clip
from finecliper.runtime.checkpoint import read_checkpoint_info
from finecliper.runtime.hub import CONFIG_FILE, MODEL_FORMAT, WEIGHTS_FILE
from finecliper.runtime.inputs import to_model_inputs
from finecliper.serve import commands
from finecliper.serve import predictor as predictor_module
from finecliper.serve.annotate import output_size, write_outputs
from finecliper.serve.predictor import (
    PredictionResult,
    Predictor,
    demo_model_path,
)
from finecliper.serve.windows import parse_span, window_ranges
from finecliper.text.backends import BackendOptions
from finecliper.text.backends.template import TemplateBackend

MODALITIES = ["video", "parsing", "landmark", "text"]


@pytest.fixture(scope="module")
def astronaut_result(predictor: Predictor, astronaut_video: Path) -> PredictionResult:
    return predictor.predict(astronaut_video)


def check_distribution(values: dict[str, float], names: list[str]) -> None:
    assert list(values) == names
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert math.isclose(sum(values.values()), 1.0, abs_tol=1e-5)


def check_timeline_covers(result: dict, duration: float) -> None:
    windows = result["timeline"]
    assert windows[0]["start_s"] == 0.0
    assert windows[-1]["end_s"] == pytest.approx(duration)
    for before, after in itertools.pairwise(windows):
        assert before["start_s"] < after["start_s"] <= before["end_s"]  # no gap
    for window in windows:
        check_distribution(window["probabilities"], result["classes"])
        check_distribution(window["weights"], MODALITIES)


def test_astronaut_video_json(astronaut_result: PredictionResult) -> None:
    result = json.loads(json.dumps(astronaut_result.to_dict()))
    assert result["video"].endswith("astronaut.mp4")
    assert result["num_frames"] == ASTRONAUT_FRAMES and result["fps"] == ASTRONAUT_FPS
    assert result["duration_s"] == pytest.approx(5.0)
    check_distribution(result["probabilities"], result["classes"])
    assert result["top"] == max(result["probabilities"], key=result["probabilities"].get)
    check_distribution(result["modality_weights"], MODALITIES)
    # 16-frame windows every 8 frames over 50 frames: starts 0..32, plus one ending the video.
    assert [w["start_frame"] for w in result["timeline"]] == [0, 8, 16, 24, 32, 34]
    check_timeline_covers(result, 5.0)
    assert all(w["face_found"] for w in result["timeline"])
    assert all(w["weights"]["parsing"] > 0 and w["weights"]["text"] > 0 for w in result["timeline"])
    assert isinstance(result["description"], str) and result["description"].endswith(".")
    assert result["settings"]["face_crop"] is True and result["problems"] == []
    # Whole-video probabilities are the mean of the windows' (documented choice).
    for name in result["classes"]:
        mean = np.mean([w["probabilities"][name] for w in result["timeline"]])
        assert result["probabilities"][name] == pytest.approx(mean, abs=2e-6)


def test_astronaut_face_is_tracked(astronaut_result: PredictionResult) -> None:
    boxes = astronaut_result.face_boxes
    assert len(boxes) == ASTRONAUT_FRAMES and all(box is not None for box in boxes)
    centres = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes])
    # The view pans right/down over the image, so the face moves left/up on screen by the
    # pan offset x 256/384 pixels; the tracked box follows it.
    expected = -astronaut_offsets() * 256 / 384
    for axis in (0, 1):
        moved = centres[:, axis] - centres[0, axis]
        target = expected[:, axis] - expected[0, axis]
        assert np.corrcoef(moved, target)[0, 1] > 0.95
        assert np.abs(moved - target).max() < 6
    # The face sits in the top middle of the astronaut picture.
    assert 60 < centres[0, 0] < 200 and 0 < centres[0, 1] < 120


def test_annotated_outputs(astronaut_result: PredictionResult, tmp_path: Path) -> None:
    paths = write_outputs(astronaut_result, tmp_path / "out")
    with av.open(str(paths["annotated_video"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == ASTRONAUT_FRAMES
    assert frames[0].shape == (320, 320, 3)  # 256 px scaled up to the 320 px minimum
    box = astronaut_result.face_boxes[0]
    x0, y0, x1, y1 = (round(v * 320 / 256) for v in box)
    face = frames[0][y0:y1, x0:x1].astype(int)
    yellow = (face[..., 0] > 190) & (face[..., 1] > 190) & (face[..., 2] < 90)
    assert yellow.sum() > 50  # landmark dots
    skin_blue = (face[..., 2] > face[..., 0] + 40).mean()
    assert skin_blue > 0.2  # the parsing overlay's skin colour (0, 153, 255) blended in
    with Image.open(paths["timeline_plot"]) as plot:
        assert plot.format == "PNG" and plot.size[0] > 400
    saved = json.loads(paths["result"].read_text())
    assert saved == json.loads(json.dumps(astronaut_result.to_dict()))


def test_synth_clip_folder(predictor: Predictor, synth_clip: Path, tmp_path: Path) -> None:
    result = predictor.predict(synth_clip)
    data = result.to_dict()
    assert data["num_frames"] == 16 and data["fps"] == 25.0  # frame folders: 25 fps default
    assert data["settings"]["face_crop"] is False  # frame folders are already face crops
    assert len(data["timeline"]) == 1
    check_timeline_covers(data, 16 / 25)
    check_distribution(data["probabilities"], data["classes"])
    assert data["face_found"] and data["description"]
    paths = write_outputs(result, tmp_path)
    with av.open(str(paths["annotated_video"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16


def test_predict_mirrors_prepare_faces_and_eval(
    predictor: Predictor, synth_clip: Path, tmp_path: Path
) -> None:
    """One window over a whole clip gets exactly the inputs ``prepare faces`` + the evaluation
    loader give that clip, and so the same probabilities."""
    result = predictor.predict(synth_clip)
    settings = FacesSettings()
    record = ClipRecord("synth_00000", synth_clip, 0, "test", 16)
    tools = FaceTools(settings)
    try:
        assert process_clip(record, tmp_path, tools, settings).status == "ok"
    finally:
        tools.close()
    description = TemplateBackend(BackendOptions(landmarks_root=tmp_path)).describe_clip(
        record.clip_id
    )
    assert description.text == result.timeline[0].description
    model, config = predictor.model, predictor.config
    dataset = ClipDataset(
        [record],
        transform=ClipTransform(config.data.image_size, train=False),
        num_frames=config.data.num_frames,
        train=False,
        middle=cache_middle_locator(tmp_path),
        descriptions={record.clip_id: description.text},
    )
    batch = collate_clips([dataset[0]])
    inputs = to_model_inputs(
        batch, torch.device("cpu"), modalities=model.modalities, tokenizer=model.tokenizer
    )
    with torch.no_grad():
        expected = model(inputs).logits.softmax(dim=-1)[0].numpy()
    got = np.array([result.timeline[0].probabilities[c] for c in predictor.classes])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_frames_array_equals_folder(tiny_checkpoint: Path, synth_clip: Path) -> None:
    with Predictor.from_checkpoint(
        tiny_checkpoint, "cpu", crop="never", window="0.32s", stride=4
    ) as p:
        from_folder = p.predict(synth_clip)
        from_array = p.predict(read_frames(synth_clip), fps=25)
    assert from_array.video == "<array>"
    assert [w.end_frame for w in from_array.timeline] == [8, 12, 16]  # 0.32 s = 8 frames
    for a, b in zip(from_array.timeline, from_folder.timeline, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert from_array.face_boxes == from_folder.face_boxes


def test_video_without_face(predictor: Predictor, noise_video: Path, tmp_path: Path) -> None:
    result = predictor.predict(noise_video)
    data = result.to_dict()
    assert not data["face_found"] and data["description"] is None
    assert len(data["face_boxes"]) == 20  # BlazeFace may see a face in noise; the mesh does not
    for window in data["timeline"]:
        assert not window["face_found"] and window["description"] is None
        # The missing modalities are dropped from the weighting: the video carries it all.
        assert window["weights"] == {"video": 1.0, "parsing": 0.0, "landmark": 0.0, "text": 0.0}
    check_distribution(data["probabilities"], data["classes"])
    paths = write_outputs(result, tmp_path)
    with av.open(str(paths["annotated_video"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 20


def test_text_none_makes_text_missing(tiny_checkpoint: Path, synth_clip: Path) -> None:
    with Predictor.from_checkpoint(tiny_checkpoint, "cpu", text="none") as p:
        result = p.predict(synth_clip)
    assert result.description is None and result.timeline[0].face_found
    assert result.modality_weights["text"] == 0.0 and result.modality_weights["parsing"] > 0


def test_corrupt_and_missing_files(predictor: Predictor, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(FineCLIPERError, match=r"corrupt\.mp4: cannot open video"):
        predictor.predict(corrupt)
    with pytest.raises(FineCLIPERError, match=r"missing\.mp4: video file does not exist"):
        predictor.predict(tmp_path / "missing.mp4")
    with pytest.raises(FineCLIPERError, match=r"\(T, H, W, 3\) uint8"):
        predictor.predict(np.zeros((4, 8, 8), dtype=np.uint8))


def test_truncated_video_keeps_its_frames(predictor: Predictor, tmp_path: Path) -> None:
    whole = write_video(tmp_path / "whole.mkv", astronaut_frames(30, 128), ASTRONAUT_FPS)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    result = predictor.predict(cut)
    assert 0 < result.num_frames < 30
    assert result.timeline[-1].end_frame == result.num_frames
    assert "of the 30 frames its header announces decode" in result.problems[0]
    assert "decoding stopped early" in result.to_dict()["problems"][0]


def test_bundled_model_is_portable() -> None:
    """The shipped model folder names the bundled backbone and no path of the machine it was
    trained on, and records the demo run it came from."""
    config, classes, extra = read_checkpoint_info(demo_model_path() / WEIGHTS_FILE)
    info = json.loads((demo_model_path() / CONFIG_FILE).read_text())
    assert info["format"] == MODEL_FORMAT and info["backbone"]["source"] == "bundled"
    assert config.model.backbone == DEMO_BACKBONE_NAME and config.model.variant == "full"
    assert config.data.root is None and config.data.descriptions is None
    assert config.data.faces_cache is None
    assert classes == DFEW_CLASSES
    # The demo's floor (tests/test_demo_accuracy.py): inputs measured by the pipeline.
    assert extra["bundled_from"] == "finecliper demo" and extra["demo_test_uar"] >= 0.72


def test_cli_predict_uses_the_bundled_checkpoint(
    astronaut_video: Path, synth_clip: Path, tmp_path: Path, capsys
) -> None:
    """No --model: the bundled one predicts a real-photo video and a SynthDFER clip."""
    videos = [str(astronaut_video), str(synth_clip)]
    code = run_cli(["predict", *videos, "--device", "cpu", "--json", "--out", str(tmp_path)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [line["video"] for line in lines] == videos
    for line in lines:
        check_distribution(line["probabilities"], line["classes"])
        check_timeline_covers(line, line["duration_s"])
        assert line["settings"]["checkpoint"] == str(demo_model_path())
        assert line["face_found"] and line["description"]
        assert Path(line["outputs"]["annotated_video"]).is_file()


def test_missing_bundled_model_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(predictor_module, "assets_dir", lambda: tmp_path)
    with pytest.raises(FineCLIPERError, match="bundled demo model is missing"):
        Predictor.from_checkpoint(device="cpu")


def test_bad_options(tiny_checkpoint: Path) -> None:
    with pytest.raises(FineCLIPERError, match="text backend 'llm'"):
        Predictor.from_checkpoint(tiny_checkpoint, "cpu", text="llm")
    with pytest.raises(FineCLIPERError, match="window length '2x'"):
        Predictor.from_checkpoint(tiny_checkpoint, "cpu", window="2x")
    with pytest.raises(FineCLIPERError, match="does not exist"):
        Predictor.from_checkpoint(tiny_checkpoint.with_name("nothing.safetensors"), "cpu")


def test_window_layout() -> None:
    assert parse_span("16").frames(30) == 16 and parse_span("2.5s").frames(30) == 75
    ranges = window_ranges(10, 16, 8, 4)  # shorter than one window: one window, all of it
    assert [(w.start, w.end) for w in ranges] == [(0, 10)] and ranges[0].sampled == (1, 3, 6, 8)
    ranges = window_ranges(40, 16, 8, 16)
    assert [(w.start, w.end) for w in ranges] == [(0, 16), (8, 24), (16, 32), (24, 40)]
    assert ranges[1].sampled == tuple(range(8, 24))
    assert output_size(1920, 1080) == (640, 360) and output_size(64, 48) == (320, 240)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_predict_json_and_outputs(
    tiny_checkpoint: Path, astronaut_video: Path, synth_clip: Path, tmp_path: Path, capsys
) -> None:
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"not a video at all")
    videos = [str(astronaut_video), str(synth_clip), str(corrupt)]
    argv = ["predict", *videos, "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    code = run_cli([*argv, "--json", "--out", str(tmp_path / "out")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # one video failed; the others were still predicted
    assert [line["video"] for line in lines] == videos
    assert "broken.mp4: cannot open video" in lines[2]["error"]
    for line, folder in zip(lines[:2], ("astronaut", "frames"), strict=True):
        check_distribution(line["probabilities"], line["classes"])
        check_timeline_covers(line, line["duration_s"])
        assert line["outputs"]["annotated_video"] == str(
            tmp_path / "out" / folder / "annotated.mp4"
        )
        assert Path(line["outputs"]["timeline_plot"]).is_file()
    code = run_cli([*argv[:2], *argv[4:]])
    text = capsys.readouterr().out
    assert code == 0 and "astronaut.mp4: " in text and "modality weights: video" in text
    assert "timeline:" in text and "   0.00-1.60    s" in text


def test_output_folders_are_unique() -> None:
    folders = commands.output_folders([Path("a/clip.mp4"), Path("b/clip.mp4")], Path("out"))
    assert folders == {"a/clip.mp4": Path("out/clip"), "b/clip.mp4": Path("out/clip-2")}
