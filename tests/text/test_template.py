import itertools

import numpy as np
import pytest
from text_fixtures import NEUTRAL_FACE, animate

from finecliper.errors import ConfigError
from finecliper.face.cache import CACHE_FORMAT, clip_dir
from finecliper.io import write_json
from finecliper.text.backends import BackendOptions, ClipRequest
from finecliper.text.backends.template import TemplateBackend, describe_landmarks, smooth_jitter
from finecliper.text.lexicon import find_emotion_words


@pytest.mark.parametrize(
    ("moves", "phrase"),
    [
        ({"brow_raise": 3}, "The eyebrows rise clearly midway through the clip and then settle"),
        ({"brow_raise": -3}, "The eyebrows are drawn down clearly"),
        ({"inner_brow_raise": 4}, "The inner ends of the eyebrows lift clearly and then settle"),
        ({"inner_brow_raise": -4}, "The inner ends of the eyebrows draw down towards the nose"),
        ({"nose_wrinkle": 2}, "The nose wrinkles clearly midway through the clip and then"),
        ({"eye_widen": 1.5}, "The eyes widen"),
        ({"eye_widen": -1.5}, "The eyes narrow"),
        ({"mouth_open": 12}, "The mouth opens clearly"),
        ({"corner_lift": 3}, "The lip corners pull upwards"),
        ({"corner_lift": -3}, "The lip corners turn downwards"),
        ({"blink_at": 5}, "The eyes blink once."),
        ({"head_roll": 12}, "The head tilts clearly to one side and then straightens."),
        ({"head_shift_x": 10}, "The head moves slightly sideways."),
    ],
)
def test_each_movement_is_described(moves, phrase):
    text = describe_landmarks(animate(16, **moves))
    assert phrase in text


def test_a_still_face_is_described_as_still():
    text = describe_landmarks(animate(16))
    assert text == "The brows, eyes and mouth show little movement. The head stays still."


def test_larger_movements_get_stronger_words():
    texts = [describe_landmarks(animate(16, brow_raise=px)) for px in (1.5, 3, 6)]
    assert ["slightly" in texts[0], "clearly" in texts[1], "strongly" in texts[2]] == [True] * 3


def test_description_does_not_depend_on_face_size_or_position():
    points = animate(16, brow_raise=3, mouth_open=12, corner_lift=3)
    moved = points * 3.0 + np.array([40.0, -25.0], np.float32)
    assert describe_landmarks(moved) == describe_landmarks(points)


def test_iris_mesh_gives_the_gaze_direction():
    frames = 16
    mesh = np.zeros((frames, 478, 3), np.float32)
    # Eye corners of both eyes as in the 68-point face; irises drift to image-right mid-clip.
    for iris, first, second, eye in ((468, 33, 133, slice(36, 42)), (473, 362, 263, slice(42, 48))):
        corners = NEUTRAL_FACE[eye][[0, 3], :]
        mesh[:, first, :2], mesh[:, second, :2] = corners[0], corners[1]
        mesh[:, iris, :2] = corners.mean(axis=0)
    drift = 3.0 * np.clip(1 - np.abs(np.linspace(0, 1, frames) - 0.5) / 0.2, 0, 1)
    mesh[:, [468, 473], 0] += drift[:, None]
    text = describe_landmarks(animate(frames), mesh)
    assert (
        "The gaze shifts clearly to the person's left midway through the clip and then returns."
        in text
    )


def test_measured_points_are_smoothed_so_a_one_frame_jump_is_not_a_movement():
    spike = animate(16)
    spike[8, 17:27, 1] -= 1.0  # one frame of tracker jitter
    sustained = animate(16, brow_raise=1.0)  # the same height, held over several frames
    assert "eyebrows" not in describe_landmarks(spike, measured=True)
    assert "The eyebrows rise slightly" in describe_landmarks(sustained, measured=True)


def test_smoothing_keeps_the_eye_opening_raw_so_blinks_survive():
    series = {"eye_open": np.array([1.0, 1.0, 0.2, 1.0, 1.0]), "mouth_open": np.arange(5.0)}
    smoothed = smooth_jitter({**series, "brow_height": np.array([0.0, 0.0, 3.0, 0.0, 0.0])})
    np.testing.assert_array_equal(smoothed["eye_open"], series["eye_open"])
    np.testing.assert_allclose(smoothed["brow_height"], [0, 1, 1, 1, 0])
    np.testing.assert_allclose(smoothed["mouth_open"], [1 / 3, 1, 2, 3, 11 / 3])
    assert "The eyes blink once." in describe_landmarks(animate(16, blink_at=5), measured=True)


def test_no_emotion_words_in_any_combination_of_movements():
    amounts = {
        "brow_raise": (-4, 4),
        "inner_brow_raise": (-4, 4),
        "nose_wrinkle": (0, 2),
        "mouth_open": (0, 12),
        "corner_lift": (-3, 3),
    }
    for values in itertools.product(*amounts.values()):
        moves = dict(zip(amounts, values, strict=True))
        for extra in ({}, {"blink_at": 3, "head_roll": 10}):
            text = describe_landmarks(animate(16, **moves, **extra))
            assert find_emotion_words(text) == [], text


def _write_clip(root, clip_id, points):
    folder = root / "clips" / clip_id
    folder.mkdir(parents=True)
    np.save(folder / "landmarks.npy", points)


def test_backend_skips_frames_without_a_face_and_reports_the_frames_used(tmp_path):
    points = animate(16, brow_raise=3)
    points[[0, 7]] = np.nan
    _write_clip(tmp_path, "clip_a", points)
    backend = TemplateBackend(BackendOptions(landmarks_root=tmp_path))
    reply = backend.describe([ClipRequest("clip_a", "")])[0]
    assert reply.error is None
    assert "The eyebrows rise" in reply.text
    assert reply.frame_indices == [i for i in range(16) if i not in (0, 7)]


def test_backend_errors_name_the_clip_and_the_problem(tmp_path):
    _write_clip(tmp_path, "no_face", np.full((4, 68, 2), np.nan, np.float32))
    _write_clip(tmp_path, "bad_shape", np.zeros((4, 5, 2), np.float32))
    backend = TemplateBackend(BackendOptions(landmarks_root=tmp_path))
    replies = backend.describe(
        [ClipRequest("no_face", ""), ClipRequest("bad_shape", ""), ClipRequest("missing", "")]
    )
    assert [r.text for r in replies] == [None, None, None]
    assert "no frame with a face" in replies[0].error
    assert "shape (4, 5, 2)" in replies[1].error
    assert "missing" in replies[2].error and "no landmarks.npy" in replies[2].error


def test_backend_needs_a_landmarks_folder():
    with pytest.raises(ConfigError, match="--landmarks"):
        TemplateBackend(BackendOptions())


def test_backend_finds_a_faces_caches_clips_by_their_safe_folder_names(tmp_path):
    clip_id = "Scene/Happy/0001"
    folder = clip_dir(tmp_path, clip_id)
    folder.mkdir(parents=True)
    np.save(folder / "landmarks.npy", animate(16, brow_raise=3))
    backend = TemplateBackend(BackendOptions(landmarks_root=tmp_path))
    assert "no landmarks.npy" in backend.describe_clip(clip_id).error  # not declared a cache
    write_json(tmp_path / "manifest.json", {"format": CACHE_FORMAT})
    backend = TemplateBackend(BackendOptions(landmarks_root=tmp_path))
    assert "The eyebrows rise" in backend.describe_clip(clip_id).text


def test_backend_reads_where_an_explicit_locator_points(tmp_path):
    _write_clip(tmp_path, "elsewhere", animate(16, brow_raise=3))
    backend = TemplateBackend(
        BackendOptions(landmarks_root=tmp_path / "unused"),
        locator=lambda clip_id: tmp_path / "clips" / "elsewhere",
    )
    assert "The eyebrows rise" in backend.describe_clip("any").text
