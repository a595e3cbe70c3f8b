import pytest
import torch

from finecliper.errors import FineCLIPERError
from finecliper.face.render import landmark_radius, render_landmarks, render_parsing
from finecliper.face.schema import (
    LANDMARK_COLOUR,
    NUM_LANDMARKS,
    PARSING_CLASSES,
    PARSING_COLOURS,
    PARSING_INDEX,
)


def grey_frames(*lead: int, size: int = 32, value: int = 100) -> torch.Tensor:
    return torch.full((*lead, 3, size, size), value, dtype=torch.uint8)


def test_parsing_blends_class_colours_over_face_pixels_only():
    frames = grey_frames(1)
    frames[0, :, :, :] = torch.tensor([100, 50, 200], dtype=torch.uint8).view(3, 1, 1)
    maps = torch.zeros(1, 32, 32, dtype=torch.uint8)
    maps[0, 4:10, 4:10] = PARSING_INDEX["skin"]
    maps[0, 12:16, 20:28] = PARSING_INDEX["left_eye"]
    maps[0, 20:24, 20:28] = PARSING_INDEX["right_eye"]
    out = render_parsing(frames, maps)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    # skin (0, 153, 255) over (100, 50, 200): rounded means (50, 102, 228).
    assert out[0, :, 6, 6].tolist() == [50, 102, 228]
    for name, (row, col) in {"left_eye": (13, 22), "right_eye": (21, 22)}.items():
        colour = torch.tensor(PARSING_COLOURS[name])
        expected = (torch.tensor([100, 50, 200]) + colour + 1) // 2
        assert out[0, :, row, col].tolist() == expected.tolist()
    background = maps[0] == 0
    assert torch.equal(out[0][:, background], frames[0][:, background])


def test_every_class_gets_its_own_colour():
    maps = torch.arange(len(PARSING_CLASSES), dtype=torch.uint8).view(1, 1, -1)
    out = render_parsing(torch.zeros(1, 3, 1, len(PARSING_CLASSES), dtype=torch.uint8), maps)
    colours = [tuple(out[0, :, 0, i].tolist()) for i in range(1, len(PARSING_CLASSES))]
    assert len(set(colours)) == len(colours)
    for name in ("skin", "nose", "hair"):  # the paper's colours, halved over a black frame
        expected = tuple((c + 1) // 2 for c in PARSING_COLOURS[name])
        assert colours[PARSING_INDEX[name] - 1] == expected


def test_unknown_class_ids_are_left_unpainted():
    frames = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    maps = torch.full((2, 8, 8), 250, dtype=torch.uint8)
    assert torch.equal(render_parsing(frames, maps), frames)


def test_parsing_accepts_batch_and_time_dimensions():
    frames = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)
    maps = torch.randint(0, len(PARSING_CLASSES), (2, 3, 16, 16), dtype=torch.uint8)
    out = render_parsing(frames, maps)
    assert torch.equal(out[1, 2], render_parsing(frames[1, 2][None], maps[1, 2][None])[0])


def reference_dots(frames: torch.Tensor, points: torch.Tensor, radius: int) -> torch.Tensor:
    """Straightforward per-pixel definition: centre within radius + 0.5 of a finite point."""
    out = frames.clone()
    height, width = frames.shape[-2:]
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, -1)
    for n in range(frames.shape[0]):
        for x, y in points[n].double().tolist():
            if x != x or y != y:  # NaN
                continue
            dot = (cols - x) ** 2 + (rows - y) ** 2 <= (radius + 0.5) ** 2
            out[n][:, dot] = torch.tensor(LANDMARK_COLOUR, dtype=torch.uint8).view(3, 1)
    return out


def test_dot_at_integer_point_is_a_3x3_block_at_112():
    frames = grey_frames(1, size=112)
    points = torch.full((1, NUM_LANDMARKS, 2), float("nan"))
    points[0, 0] = torch.tensor([10.0, 20.0])
    out = render_landmarks(frames, points)
    changed = (out != frames).any(1)[0].nonzero().tolist()
    assert changed == [[row, col] for row in (19, 20, 21) for col in (9, 10, 11)]
    assert out[0, :, 20, 10].tolist() == list(LANDMARK_COLOUR)


@pytest.mark.parametrize("size", [112, 224])
def test_dots_match_the_pixel_definition(size):
    generator = torch.Generator().manual_seed(size)
    frames = torch.randint(0, 200, (3, 3, size, size), dtype=torch.uint8, generator=generator)
    # Sub-pixel points, some near or beyond the border, some missing.
    points = torch.rand(3, NUM_LANDMARKS, 2, generator=generator) * (size + 8) - 4
    points[1, 5] = float("nan")
    points[2] = float("nan")
    points[0, 7] = torch.tensor([1e9, -1e9])
    out = render_landmarks(frames, points)
    assert torch.equal(out, reference_dots(frames, points, landmark_radius(size)))
    assert torch.equal(out[2], frames[2])  # a frame without a face stays as it was


def test_dots_over_blank_and_batched_input():
    blank = torch.zeros(2, 4, 3, 56, 56, dtype=torch.uint8)
    points = torch.full((2, 4, NUM_LANDMARKS, 2), float("nan"))
    points[1, 3, 30] = torch.tensor([40.0, 12.0])
    out = render_landmarks(blank, points, radius=2)
    lit = (out != 0).any(2).nonzero().tolist()
    assert {(b, t) for b, t, _, _ in lit} == {(1, 3)}
    assert out[1, 3, :, 12, 40].tolist() == list(LANDMARK_COLOUR)
    assert len(lit) == 21  # radius 2 (+0.5): a 5x5 block without its corners


def test_radius_scales_with_image_size():
    assert [landmark_radius(s) for s in (64, 112, 224, 336)] == [1, 1, 2, 3]


def test_rendering_does_not_modify_its_input():
    frames = grey_frames(1)
    points = torch.full((1, NUM_LANDMARKS, 2), 16.0)
    maps = torch.ones(1, 32, 32, dtype=torch.uint8)
    render_landmarks(frames, points)
    render_parsing(frames, maps)
    assert (frames == 100).all()


def test_bad_inputs_are_clear_errors():
    frames = grey_frames(2)
    with pytest.raises(FineCLIPERError, match="uint8"):
        render_parsing(frames.float(), torch.zeros(2, 32, 32, dtype=torch.uint8))
    with pytest.raises(FineCLIPERError, match="parsing maps"):
        render_parsing(frames, torch.zeros(2, 16, 32, dtype=torch.uint8))
    with pytest.raises(FineCLIPERError, match="points"):
        render_landmarks(frames, torch.zeros(3, NUM_LANDMARKS, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    frames = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    points = torch.rand(4, NUM_LANDMARKS, 2) * 70 - 3
    points[0, :10] = float("nan")
    maps = torch.randint(0, len(PARSING_CLASSES), (4, 64, 64), dtype=torch.uint8)
    gpu_dots = render_landmarks(frames.cuda(), points.cuda())
    gpu_parsing = render_parsing(frames.cuda(), maps.cuda())
    assert gpu_dots.is_cuda and torch.equal(gpu_dots.cpu(), render_landmarks(frames, points))
    assert torch.equal(gpu_parsing.cpu(), render_parsing(frames, maps))
