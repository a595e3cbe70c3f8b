import re
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from finecliper.data.sampling import segment_indices
from finecliper.data.video import (
    ImageReadError,
    VideoReadError,
    count_frames,
    frames_to_tensor,
    image_to_rgb,
    list_frame_files,
    load_frame_image,
    open_video,
    read_frames,
)
from finecliper.errors import FineCLIPERError

SIZE = 64
NUM_FRAMES = 32
FPS = 25


def numbered_frame(number: int) -> np.ndarray:
    """A frame whose two coloured halves encode ``number`` robustly through H.264."""
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    image[:, : SIZE // 2] = (number * 8, 40, 200)
    image[:, SIZE // 2 :] = (30, 255 - number * 8, 90)
    return image


def frame_number(image: np.ndarray) -> int:
    left = image[8:-8, 8 : SIZE // 2 - 8, 0].mean()
    right = image[8:-8, SIZE // 2 + 8 : -8, 1].mean()
    # Both halves must agree, so a decoded frame cannot pass by accident.
    assert round(left / 8) == round((255 - right) / 8)
    return round(left / 8)


def encode_clip(path: Path, num_frames: int = NUM_FRAMES, faststart: bool = False) -> Path:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for number in range(num_frames):
            frame = av.VideoFrame.from_ndarray(numbered_frame(number), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_mp4_frame_count_comes_from_the_container(mp4):
    assert count_frames(mp4) == NUM_FRAMES


def test_mp4_returns_the_requested_frames(mp4):
    indices = segment_indices(NUM_FRAMES, 16, train=False)
    frames = read_frames(mp4, indices)
    assert frames.shape == (16, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert [frame_number(f) for f in frames] == indices


def test_mp4_repeated_and_unordered_indices(mp4):
    indices = [31, 2, 2, 17, 0]
    assert [frame_number(f) for f in read_frames(mp4, indices)] == indices


def test_mp4_read_all_frames(mp4):
    frames = read_frames(mp4)
    assert [frame_number(f) for f in frames] == list(range(NUM_FRAMES))


def test_mp4_index_beyond_the_end_names_the_file(mp4):
    with pytest.raises(VideoReadError, match=r"clip\.mp4.*index 40.*32 frames"):
        read_frames(mp4, [3, 40])


def test_streaming_reader_yields_times_and_info(mp4):
    with open_video(mp4) as reader:
        assert reader.info.fps == FPS
        assert reader.info.num_frames == NUM_FRAMES
        assert (reader.info.width, reader.info.height) == (SIZE, SIZE)
        assert reader.info.duration_s == pytest.approx(NUM_FRAMES / FPS)
        frames = iter(reader)
        first = next(frames)  # a lazy iterator: frames are decoded one at a time
        rest = list(frames)
    assert first.index == 0 and first.image.shape == (SIZE, SIZE, 3)
    assert [f.index for f in rest] == list(range(1, NUM_FRAMES))
    assert [frame_number(f.image) for f in rest] == list(range(1, NUM_FRAMES))
    assert [f.time_s for f in rest] == pytest.approx([i / FPS for i in range(1, NUM_FRAMES)])


def test_raw_stream_without_frame_count_or_times_is_decoded_to_count(tmp_path):
    # A raw H.264 stream stores neither a frame count nor presentation times.
    raw = encode_clip(tmp_path / "clip.h264", num_frames=12)
    assert count_frames(raw) == 12
    with open_video(raw) as reader:
        assert reader.info.num_frames is None
        times = [f.time_s for f in reader]
    assert times == pytest.approx([i / FPS for i in range(12)])


@pytest.mark.parametrize("payload", [b"", b"\x00\x00\x01garbage" * 50])
def test_corrupt_video_is_a_clear_error_naming_the_path(tmp_path, payload):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(payload)
    for call in (lambda: count_frames(bad), lambda: read_frames(bad, [0]), lambda: open_video(bad)):
        with pytest.raises(VideoReadError, match=re.escape(str(bad))):
            call()


def test_truncated_mp4_is_a_clear_error(tmp_path, mp4):
    # Index at the end (PyAV's default): the cut file cannot be opened at all.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoReadError, match=re.escape(str(cut))):
        read_frames(cut, [0, 20])


def test_truncated_faststart_mp4_reports_the_missing_frames(tmp_path):
    # Index first: the container still promises 32 frames but only the first few decode.
    whole = encode_clip(tmp_path / "whole.mp4", faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    assert count_frames(cut) == NUM_FRAMES
    decodable = len(read_frames(cut))
    assert 0 < decodable < NUM_FRAMES
    with pytest.raises(VideoReadError, match=rf"cut\.mp4: frame index 31 .* {decodable} frames"):
        read_frames(cut, [0, 31])


def test_missing_path_is_a_clear_error(tmp_path):
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(VideoReadError, match=re.escape(str(missing))):
        count_frames(missing)
    with pytest.raises(VideoReadError, match="no such frame folder or video file"):
        read_frames(tmp_path / "00042", [0])
    with pytest.raises(VideoReadError, match="no_folder"):
        list_frame_files(tmp_path / "no_folder")


def write_folder(folder: Path, names: list[str], sizes: dict[str, int] | None = None) -> Path:
    folder.mkdir()
    for name in names:
        number = int("".join(c for c in name if c.isdigit()))
        image = Image.fromarray(numbered_frame(number))
        side = (sizes or {}).get(name, SIZE)
        image.resize((side, side), Image.Resampling.NEAREST).save(folder / name)
    return folder


def test_folder_is_sorted_naturally_and_ignores_other_files(tmp_path):
    folder = write_folder(tmp_path / "clip", ["f10.png", "f2.png", "f1.PNG", "f9.png"])
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".f0.png").write_bytes(b"macOS resource fork")
    assert [p.name for p in list_frame_files(folder)] == ["f1.PNG", "f2.png", "f9.png", "f10.png"]
    assert count_frames(folder) == 4
    frames = read_frames(folder, [3, 0, 0])
    assert [frame_number(f) for f in frames] == [10, 1, 1]


def test_folder_jpeg_frames_are_decoded(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for number in range(5):
        Image.fromarray(numbered_frame(number)).save(folder / f"{number:05d}.jpg", quality=95)
    frames = read_frames(folder, segment_indices(5, 16, train=False))
    assert frames.shape == (16, SIZE, SIZE, 3)
    assert [frame_number(f) for f in frames] == [0, 1, 2, 3, 4] + [4] * 11


def test_folder_frames_of_other_sizes_take_the_first_frames_size(tmp_path):
    folder = write_folder(tmp_path / "clip", ["1.png", "2.png", "3.png"], sizes={"2.png": 96})
    frames = read_frames(folder, [1, 2])
    assert frames.shape == (2, SIZE, SIZE, 3)
    assert [frame_number(f) for f in frames] == [2, 3]


@pytest.mark.parametrize("damage", ["garbage_jpeg", "truncated_png"])
def test_corrupt_frame_names_the_file(tmp_path, damage):
    folder = write_folder(tmp_path / "clip", ["1.png", "2.png"])
    if damage == "garbage_jpeg":
        broken = folder / "3.jpg"
        broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    else:
        broken = folder / "3.png"
        broken.write_bytes((folder / "1.png").read_bytes()[:60])
    assert [frame_number(f) for f in read_frames(folder, [0, 1])] == [1, 2]
    with pytest.raises(VideoReadError, match=re.escape(str(broken))):
        read_frames(folder, [0, 2])


def test_empty_folder_and_bad_indices(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert count_frames(empty) == 0
    with pytest.raises(VideoReadError, match="empty"):
        read_frames(empty, [0])
    folder = write_folder(tmp_path / "clip", ["1.png"])
    with pytest.raises(VideoReadError, match="index -1"):
        read_frames(folder, [-1])
    with pytest.raises(FineCLIPERError, match="no frame indices"):
        read_frames(folder, [])


def test_frames_to_tensor_is_channels_first_in_channels_last_memory():
    frames = np.stack([numbered_frame(3), numbered_frame(4)])
    tensor = frames_to_tensor(frames)
    assert tensor.shape == (2, 3, SIZE, SIZE)
    assert tensor.is_contiguous(memory_format=torch.channels_last)
    assert tensor[1, :, 0, 0].tolist() == [32, 40, 200]


def test_one_frame_image_is_rgb_at_the_clips_first_frame_size(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (20, 10), 128).save(grey)
    own = load_frame_image(grey, None)
    assert own.shape == (10, 20, 3) and own.dtype == np.uint8 and (own == 128).all()
    assert load_frame_image(grey, (8, 6)).shape == (6, 8, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageReadError, match=re.escape(f"{broken}: unreadable image")) as caught:
        load_frame_image(broken, None)
    assert caught.value.file == broken and caught.value.reason


def _png_bytes(pixels: np.ndarray, bit_depth: int, colour_type: int) -> bytes:
    """A PNG written by hand, so 16-bit colour types PIL cannot save are covered too."""
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\x00" + row.astype(dtype).tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16bit_grey_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 8).astype(np.uint16).reshape(8, 16)
    file = tmp_path / "grey16.png"
    file.write_bytes(_png_bytes(ramp, 16, 0))
    pixels = load_frame_image(file, None)
    expected = np.round(ramp / 257.0).astype(np.uint8)
    assert pixels.dtype == np.uint8 and (pixels == expected[..., None]).all()
    # read_frames' folder path goes through the same loader.
    assert (read_frames(tmp_path, [0])[0] == pixels).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_16bit_grey_images_of_each_byte_order_are_scaled(mode):
    byte_order = ">" if mode == "I;16B" else "<"
    raw = np.full((4, 4), 32896, f"{byte_order}u2").tobytes()
    image = Image.frombytes(mode, (4, 4), raw)  # PIL's convert() between these clips at 255
    assert (image_to_rgb(image, None) == 128).all()


def test_48bit_rgb_png_keeps_its_colour(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[..., 0], pixels[..., 1] = 65535, 32896
    file = tmp_path / "rgb48.png"
    file.write_bytes(_png_bytes(pixels, 16, 2))
    assert load_frame_image(file, None)[0, 0].tolist() == [255, 128, 0]


@pytest.mark.parametrize("mode", ["P", "PA"])
def test_palette_images_with_transparency_keep_their_palette_colours(tmp_path, mode):
    image = Image.new(mode, (4, 2))
    image.putpalette([200, 10, 20, 5, 150, 250])
    image.paste(1, (2, 0, 4, 2))
    if mode == "P":
        file = tmp_path / "palette.png"
        image.save(file, transparency=0)
        pixels = load_frame_image(file, None)
    else:
        pixels = image_to_rgb(image, None)
    assert pixels[0, 0].tolist() == [200, 10, 20] and pixels[0, 3].tolist() == [5, 150, 250]


@pytest.mark.parametrize(("mode", "kind"), [("I", "32-bit integer"), ("F", "floating-point")])
def test_pixel_formats_without_an_8bit_reading_are_refused_by_name(tmp_path, mode, kind):
    file = tmp_path / "odd.png"
    Image.new(mode, (4, 4)).save(tmp_path / "odd.tiff")
    (tmp_path / "odd.tiff").rename(file)  # a TIFF named .png: PIL opens files by content
    with pytest.raises(ImageReadError, match=re.escape(f"{file}: unreadable image ({kind}")):
        load_frame_image(file, None)
