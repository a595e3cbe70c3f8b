import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from finecliper.data.config import DataConfig
from finecliper.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    ClipSample,
    ClipTransform,
    CropBox,
    center_square_box,
    clip_normalize,
    hflip,
    resize_frames,
    resized_crop,
    sample_crop_box,
)
from finecliper.errors import FineCLIPERError
from finecliper.face.schema import (
    LANDMARK_FLIP,
    LANDMARK_GROUPS,
    NUM_LANDMARKS,
    PARSING_FLIP,
    PARSING_INDEX,
)

HEIGHT, WIDTH = 96, 112  # non-square on purpose
DOT_RADIUS = 4
GROUP_CLASS = {
    "jaw": "skin",
    "right_brow": "right_brow",
    "left_brow": "left_brow",
    "nose": "nose",
    "right_eye": "right_eye",
    "left_eye": "left_eye",
    "outer_lips": "upper_lip",
    "inner_lips": "inner_mouth",
}
# Class id of the region painted under each landmark index, e.g. points 36-41 on right_eye.
LANDMARK_CLASS = torch.tensor(
    [
        PARSING_INDEX[GROUP_CLASS[group]]
        for index in range(NUM_LANDMARKS)
        for group, members in LANDMARK_GROUPS.items()
        if index in members
    ]
)
# 68 well-separated colours (channel levels 63 apart), none of them the black background.
PALETTE = torch.tensor(
    [c for c in itertools.product(range(0, 256, 63), repeat=3) if any(c)][::-1][:NUM_LANDMARKS],
    dtype=torch.float32,
)


def landmark_scene() -> ClipSample:
    """One frame with a coloured dot and a parsing disc at each of 68 scattered landmarks."""
    grid = [(8 + 12 * col, 6 + 12 * row) for row in range(8) for col in range(9)]
    order = torch.randperm(len(grid), generator=torch.Generator().manual_seed(0))
    points = torch.tensor([grid[i] for i in order[:NUM_LANDMARKS].tolist()], dtype=torch.float32)
    rows = torch.arange(HEIGHT).view(-1, 1)
    cols = torch.arange(WIDTH).view(1, -1)
    frame = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
    parsing = torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8)
    for index, (x, y) in enumerate(points.tolist()):
        disc = (cols - x) ** 2 + (rows - y) ** 2 <= DOT_RADIUS**2
        frame[:, disc] = PALETTE[index].to(torch.uint8).view(3, 1)
        parsing[disc] = LANDMARK_CLASS[index].item()
    return ClipSample(frame[None], parsing[None], points[None])


def nearest_palette_index(colours: torch.Tensor) -> torch.Tensor:
    """Index into PALETTE of each (N, 3) colour; -1 where black background is nearest."""
    choices = torch.cat([torch.zeros(1, 3), PALETTE])
    return torch.cdist(colours.float(), choices).argmin(-1) - 1


def pixels_at(sample: ClipSample, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame colours (N, 3) and parsing classes (N,) at the pixels under (N, 2) points."""
    cols, rows = points.round().long().unbind(-1)
    return sample.frames[0][:, rows, cols].T, sample.parsing[0][rows, cols]


def visible(points: torch.Tensor, size: int, margin: float) -> torch.Tensor:
    return ((points >= margin) & (points <= size - 1 - margin)).all(-1)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("image_size", [64, 160])  # shrinking and enlarging crops
def test_crop_and_flip_move_frame_parsing_and_landmarks_together(flip, image_size):
    scene = landmark_scene()
    transform = ClipTransform(image_size, train=True, crop_scale=(0.4, 1.0), hflip_prob=float(flip))
    # The landmark now at index k came from index LANDMARK_FLIP[k] when the clip was mirrored.
    source = torch.tensor(LANDMARK_FLIP) if flip else torch.arange(NUM_LANDMARKS)
    checked = 0
    for seed in range(25):
        out = transform(scene, torch.Generator().manual_seed(seed))
        points = out.landmarks[0]
        inside = visible(points, image_size, margin=3)
        colours, classes = pixels_at(out, points[inside])
        assert nearest_palette_index(colours).tolist() == source[inside].tolist()
        # The map under each point is that point's own region: a left-eye point (42-47) sits on
        # the left-eye class even when it came from the right eye of the unflipped frame.
        assert classes.tolist() == LANDMARK_CLASS[inside].tolist()
        checked += int(inside.sum())
    assert checked > 25 * NUM_LANDMARKS // 3  # most points stay inside most crops


def test_flip_reindexes_landmarks_and_swaps_parsing_classes():
    scene = landmark_scene()
    out = hflip(scene)
    x36, y36 = scene.landmarks[0, 36].tolist()
    # The subject's right eye outer corner (36) becomes the left eye outer corner (45).
    assert out.landmarks[0, 45].tolist() == [WIDTH - 1 - x36, y36]
    assert out.landmarks[0, 36].tolist() == [
        WIDTH - 1 - scene.landmarks[0, 45, 0].item(),
        scene.landmarks[0, 45, 1].item(),
    ]
    col, row = int(WIDTH - 1 - x36), int(y36)
    assert scene.parsing[0, int(y36), int(x36)] == PARSING_INDEX["right_eye"]
    assert out.parsing[0, row, col] == PARSING_INDEX["left_eye"]
    assert torch.equal(out.frames[0, :, row, col], scene.frames[0, :, int(y36), int(x36)])
    assert torch.equal(hflip(out).parsing, scene.parsing)
    assert torch.equal(hflip(out).landmarks, scene.landmarks)


def test_flip_remaps_every_class_and_keeps_unknown_ids():
    ids = torch.tensor([[[*range(len(PARSING_FLIP)), 200]]], dtype=torch.uint8)
    frames = torch.zeros(1, 3, 1, ids.shape[-1], dtype=torch.uint8)
    flipped = hflip(ClipSample(frames, ids)).parsing[0, 0].flip(-1)
    assert flipped.tolist() == [*PARSING_FLIP, 200]


def blob_frame(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Float frame with a Gaussian blob at each point: its centroid is sub-pixel exact."""
    rows = torch.arange(height, dtype=torch.float64).view(1, -1, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, 1, -1)
    x, y = points[:, 0].view(-1, 1, 1), points[:, 1].view(-1, 1, 1)
    blobs = torch.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)).sum(0)
    return (200 * blobs).clamp(max=255).float().expand(1, 3, height, width)


def centroids(channel: torch.Tensor, points: torch.Tensor, window: int) -> torch.Tensor:
    found = []
    for x, y in points.round().long().tolist():
        patch = channel[y - window : y + window + 1, x - window : x + window + 1].double()
        offsets = torch.arange(-window, window + 1, dtype=torch.float64)
        total = patch.sum()
        found.append(
            [x + (patch.sum(0) * offsets).sum() / total, y + (patch.sum(1) * offsets).sum() / total]
        )
    return torch.tensor(found)


@pytest.mark.parametrize(
    ("box", "size", "sigma", "points"),
    [
        # Shrink, anisotropic: 70x60 source pixels to 40x40.
        (CropBox(10, 20, 60, 70), (40, 40), 2.0, [[35.3, 24.8], [72.6, 27.1], [38.9, 55.5]]),
        # Enlarge 3x, where a half-pixel slip in the convention would show as 1 output pixel.
        (CropBox(5, 3, 30, 24), (90, 72), 1.5, [[9.4, 12.7], [19.8, 26.1]]),
    ],
)
@pytest.mark.parametrize("flip", [False, True])
def test_landmarks_follow_image_content_to_sub_pixel_accuracy(box, size, sigma, points, flip):
    blobs = torch.tensor(points)
    landmarks = torch.full((1, NUM_LANDMARKS, 2), float("nan"))
    landmarks[0, : len(blobs)] = blobs
    sample = ClipSample(blob_frame(blobs, 100, 120, sigma), landmarks=landmarks)
    out = resized_crop(sample, box, size)
    if flip:
        out = hflip(out)
    # After a flip, the point that was index i is found at index LANDMARK_FLIP[i].
    moved_to = [LANDMARK_FLIP[i] if flip else i for i in range(len(blobs))]
    moved = out.landmarks[0, moved_to]
    scale = max(size[0] / box.height, size[1] / box.width)
    found = centroids(out.frames[0, 0], moved, window=math.ceil(3.5 * sigma * scale))
    assert (found - moved).abs().max() < 0.02  # measured: ~0.003 px


def test_parsing_resize_matches_torch_nearest_exact():
    maps = torch.randint(0, 11, (2, 37, 53), dtype=torch.uint8)
    frames = torch.zeros(2, 3, 37, 53, dtype=torch.uint8)
    box = CropBox(4, 7, 29, 41)
    out = resized_crop(ClipSample(frames, maps), box, (64, 23)).parsing
    crop = maps[:, 4:33, 7:48].float()[:, None]
    expected = F.interpolate(crop, size=(64, 23), mode="nearest-exact")[:, 0].to(torch.uint8)
    assert torch.equal(out, expected)


def test_frames_keep_dtype_and_range():
    frames = torch.zeros(2, 3, 40, 40, dtype=torch.uint8)
    frames[..., ::2, :] = 255  # stripes make bicubic overshoot
    out = resized_crop(ClipSample(frames), CropBox(0, 0, 40, 40), (56, 56)).frames
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 56, 56)
    as_float = resized_crop(ClipSample(frames.float()), CropBox(0, 0, 40, 40), (56, 56)).frames
    assert as_float.dtype == torch.float32
    assert as_float.min() >= 0 and as_float.max() <= 255
    assert (as_float.round() - out.float()).abs().max() == 0


@pytest.mark.parametrize("size", [224, 112, 57])
def test_uint8_resize_is_pils_antialiased_bicubic(size):
    # Noise is the hardest case: every pixel overshoots. 200x190 -> 224 grows, 112 and 57 shrink.
    seeded = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 200, 190), dtype=torch.uint8, generator=seeded)
    out = resize_frames(frames, (size, size))
    assert out.is_contiguous(memory_format=torch.channels_last)
    for frame, resized in zip(frames, out, strict=True):
        image = Image.fromarray(frame.permute(1, 2, 0).numpy())
        pil = torch.from_numpy(np.array(image.resize((size, size), Image.Resampling.BICUBIC)))
        difference = (resized.permute(1, 2, 0).int() - pil.int()).abs()
        # Measured: at most 1 level, except about one pixel in 150,000 off by 2 (rounding).
        assert difference.max() <= 2 and (difference > 1).float().mean() < 1e-4


def test_float_resize_uses_the_same_kernel_as_uint8():
    # The float path is what a GPU runs: separate passes, clamped between them, as PIL does.
    seeded = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (3, 3, 61, 47), dtype=torch.uint8, generator=seeded)
    for size in [(64, 64), (32, 32), (80, 40)]:
        as_uint8 = resize_frames(frames, size)
        as_float = resize_frames(frames.float(), size)
        assert as_float.dtype == torch.float32
        assert (as_float.round() - as_uint8.float()).abs().max() <= 1


def test_eval_transform_is_deterministic_centre_square():
    frames = torch.randint(0, 256, (3, 3, 48, 64), dtype=torch.uint8)
    points = torch.full((3, NUM_LANDMARKS, 2), 30.0)
    transform = ClipTransform(32, train=False)
    first = transform(ClipSample(frames, landmarks=points))
    second = transform(ClipSample(frames, landmarks=points), torch.Generator().manual_seed(9))
    assert torch.equal(first.frames, second.frames) and first.frames.shape == (3, 3, 32, 32)
    assert center_square_box(48, 64) == CropBox(0, 8, 48, 48)
    # x: (30 - 8 + 0.5) * 32/48 - 0.5 = 14.5; y: (30 + 0.5) * 32/48 - 0.5 = 19.8333
    assert first.landmarks[0, 0].tolist() == pytest.approx([14.5, 19.8333], abs=1e-4)


def test_eval_on_output_sized_square_frames_is_identity():
    frames = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = ClipTransform(32, train=False)(ClipSample(frames))
    assert torch.equal(out.frames, frames)


def test_train_transform_is_reproducible_per_seed():
    scene = landmark_scene()
    transform = ClipTransform(48, train=True, crop_scale=(0.3, 1.0))
    runs = [transform(scene, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(runs[0].frames, runs[1].frames)
    assert torch.equal(runs[0].landmarks, runs[1].landmarks)
    assert not torch.equal(runs[0].landmarks, runs[2].landmarks)


def test_half_flip_probability_flips_some_clips_only():
    scene = landmark_scene()
    never = ClipTransform(48, train=True, hflip_prob=0.0)
    half = ClipTransform(48, train=True, hflip_prob=0.5)
    outcomes = []
    for seed in range(16):
        plain = never(scene, torch.Generator().manual_seed(seed)).frames
        maybe = half(scene, torch.Generator().manual_seed(seed)).frames
        outcomes.append(torch.equal(maybe, plain.flip(-1)))
        assert outcomes[-1] or torch.equal(maybe, plain)
    assert 0 < sum(outcomes) < len(outcomes)


def test_batch_gives_each_clip_its_own_crop():
    scene = landmark_scene()
    batch = ClipSample(
        torch.stack([scene.frames.expand(4, -1, -1, -1)] * 3),
        torch.stack([scene.parsing.expand(4, -1, -1)] * 3),
        torch.stack([scene.landmarks.expand(4, -1, -1)] * 3),
    )
    transform = ClipTransform(40, train=True, crop_scale=(0.3, 1.0))
    out = transform(batch, torch.Generator().manual_seed(4))
    assert out.frames.shape == (3, 4, 3, 40, 40) and out.parsing.shape == (3, 4, 40, 40)
    assert out.landmarks.shape == (3, 4, NUM_LANDMARKS, 2)
    # Frames of one clip share the crop; different clips got different crops.
    assert torch.equal(out.landmarks[0, 0], out.landmarks[0, 3])
    assert not torch.equal(out.landmarks[0, 0], out.landmarks[1, 0])
    generator = torch.Generator().manual_seed(4)
    one_by_one = [
        transform(ClipSample(*(t[b] for t in batch_fields(batch))), generator) for b in range(3)
    ]
    assert torch.equal(out.frames, torch.stack([c.frames for c in one_by_one]))


def batch_fields(sample: ClipSample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return sample.frames, sample.parsing, sample.landmarks


def test_missing_landmarks_stay_missing():
    scene = landmark_scene()
    points = scene.landmarks.clone()
    points[0, 10] = float("nan")
    out = ClipTransform(48, train=True, hflip_prob=1.0)(
        ClipSample(scene.frames, landmarks=points), torch.Generator().manual_seed(0)
    )
    missing = out.landmarks[0].isnan().all(-1)
    assert missing.nonzero().flatten().tolist() == [LANDMARK_FLIP[10]]


@pytest.mark.parametrize("seed", range(30))
def test_random_crop_box_respects_scale_ratio_and_bounds(seed):
    box = sample_crop_box(90, 120, (0.25, 0.9), (0.5, 2.0), torch.Generator().manual_seed(seed))
    assert box.top >= 0 and box.top + box.height <= 90
    assert box.left >= 0 and box.left + box.width <= 120
    area = box.height * box.width / (90 * 120)
    assert 0.23 <= area <= 0.92
    assert 0.48 <= box.width / box.height <= 2.1


def test_crop_box_falls_back_to_centre_within_ratio():
    # A 10x100 strip cannot hold a square covering 90% of its area.
    box = sample_crop_box(10, 100, (0.9, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert box == CropBox(0, 45, 10, 10)


def test_clip_normalize_uses_clip_statistics():
    frames = torch.stack([torch.full((3, 2, 2), v, dtype=torch.uint8) for v in (0, 255)])
    out = clip_normalize(frames)
    assert out.dtype == torch.float32
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    assert torch.allclose(out[0, :, 0, 0], -mean / std)
    assert torch.allclose(out[1, :, 1, 1], (1 - mean) / std)
    assert torch.equal(clip_normalize(frames.float()), out)


def test_from_config_uses_data_settings():
    config = DataConfig(image_size=64, crop_scale_min=0.5, hflip_prob=0.0)
    transform = ClipTransform.from_config(config, train=True)
    assert transform.size == (64, 64) and transform.crop_scale == (0.5, 1.0)
    assert transform.hflip_prob == 0.0


def test_bad_shapes_and_settings_are_clear_errors():
    frames = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(FineCLIPERError, match="parsing maps"):
        ClipSample(frames, torch.zeros(2, 8, 16, dtype=torch.uint8))
    with pytest.raises(FineCLIPERError, match="landmarks"):
        ClipSample(frames, landmarks=torch.zeros(2, 5, 2))
    with pytest.raises(FineCLIPERError, match="frames"):
        ClipSample(torch.zeros(2, 4, 16, 16))
    with pytest.raises(FineCLIPERError, match="crop_scale"):
        ClipTransform(16, train=True, crop_scale=(0.0, 1.0))
    with pytest.raises(FineCLIPERError, match="hflip_prob"):
        ClipTransform(16, train=True, hflip_prob=1.5)
    with pytest.raises(FineCLIPERError, match="does not fit"):
        resized_crop(ClipSample(frames), CropBox(4, 4, 16, 8), (8, 8))
    with pytest.raises(FineCLIPERError, match="expected frames"):
        ClipTransform(16, train=False)(ClipSample(frames[0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    scene = landmark_scene()
    transform = ClipTransform(64, train=True, crop_scale=(0.4, 1.0), hflip_prob=0.5)
    on_gpu = ClipSample(*(t.cuda() for t in batch_fields(scene)))
    for seed in range(4):
        # A CPU generator draws the same crop and flip for both devices.
        cpu = transform(scene, torch.Generator().manual_seed(seed))
        gpu = transform(on_gpu, torch.Generator().manual_seed(seed))
        assert gpu.frames.is_cuda and gpu.frames.dtype == torch.uint8
        assert torch.equal(gpu.parsing.cpu(), cpu.parsing)
        assert torch.allclose(gpu.landmarks.cpu(), cpu.landmarks, equal_nan=True)
        assert (gpu.frames.cpu().int() - cpu.frames.int()).abs().max() <= 1
    # A CUDA generator works as well.
    out = transform(on_gpu, torch.Generator(device="cuda").manual_seed(0))
    assert out.frames.shape == (1, 3, 64, 64)
