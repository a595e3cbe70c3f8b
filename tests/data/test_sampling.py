import numpy as np
import pytest
import torch

from finecliper.data.sampling import segment_indices
from finecliper.errors import FineCLIPERError


def test_test_sampler_takes_segment_centres_of_48_frames():
    # 48 frames / 16 segments = segments of 3 frames: [0,1,2], [3,4,5], ... -> centres 1, 4, ...
    assert segment_indices(48, 16, train=False) == [1 + 3 * i for i in range(16)]


def test_test_sampler_on_exact_length_takes_every_frame():
    assert segment_indices(16, 16, train=False) == list(range(16))


def test_test_sampler_with_uneven_segments():
    # 20 frames in 8 segments: starts 0,2,5,7,10,12,15,17 with lengths 2,3,2,3,...
    assert segment_indices(20, 8, train=False) == [1, 3, 6, 8, 11, 13, 16, 18]


def test_test_sampler_is_deterministic_and_ignores_generator():
    first = segment_indices(101, train=False, generator=torch.Generator().manual_seed(1))
    second = segment_indices(101, train=False, generator=torch.Generator().manual_seed(2))
    assert first == second == segment_indices(101, train=False)


def _segments(num_frames: int, num_segments: int) -> list[range]:
    return [
        range(i * num_frames // num_segments, (i + 1) * num_frames // num_segments)
        for i in range(num_segments)
    ]


@pytest.mark.parametrize("num_frames", [16, 17, 31, 48, 100, 257])
def test_every_index_lies_in_its_own_segment(num_frames):
    segments = _segments(num_frames, 16)
    centres = segment_indices(num_frames, train=False)
    assert all(c in seg for c, seg in zip(centres, segments, strict=True))
    for seed in range(20):
        drawn = segment_indices(
            num_frames, train=True, generator=torch.Generator().manual_seed(seed)
        )
        assert all(d in seg for d, seg in zip(drawn, segments, strict=True))


def test_train_sampler_is_reproducible_per_seed_and_varies_across_seeds():
    def draw(seed: int) -> list[int]:
        return segment_indices(160, train=True, generator=torch.Generator().manual_seed(seed))

    assert draw(7) == draw(7)
    assert len({tuple(draw(seed)) for seed in range(10)}) == 10


def test_train_sampler_covers_whole_segments():
    # Each of the 10 frames of a segment must be reachable, not only its start or centre.
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(200):
        seen.add(segment_indices(160, train=True, generator=rng)[3])
    assert seen == set(range(30, 40))


def test_numpy_generator_is_reproducible():
    a = segment_indices(90, train=True, generator=np.random.default_rng(5))
    b = segment_indices(90, train=True, generator=np.random.default_rng(5))
    assert a == b


def test_global_torch_rng_used_without_generator():
    torch.manual_seed(3)
    a = segment_indices(90, train=True)
    torch.manual_seed(3)
    assert segment_indices(90, train=True) == a


@pytest.mark.parametrize("train", [True, False])
def test_short_clip_is_padded_with_its_last_frame(train):
    indices = segment_indices(5, 16, train=train, generator=torch.Generator().manual_seed(0))
    assert indices == [0, 1, 2, 3, 4] + [4] * 11


@pytest.mark.parametrize("train", [True, False])
def test_single_frame_clip_repeats_it(train):
    assert segment_indices(1, 16, train=train) == [0] * 16


@pytest.mark.parametrize("num_frames", [0, -3])
def test_empty_clip_is_a_clear_error(num_frames):
    with pytest.raises(FineCLIPERError, match=f"{num_frames} frames"):
        segment_indices(num_frames, train=False)


def test_invalid_segment_count_and_generator_type():
    with pytest.raises(FineCLIPERError, match="num_segments"):
        segment_indices(10, 0, train=False)
    with pytest.raises(TypeError, match="generator"):
        segment_indices(40, train=True, generator=42)


def test_even_segments_take_the_later_middle_frame():
    # 32 frames / 16 segments of 2: the TSN tick int(1 + 2i) picks the second frame of each.
    assert segment_indices(32, 16, train=False) == [1 + 2 * i for i in range(16)]
