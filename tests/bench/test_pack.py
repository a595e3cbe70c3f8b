"""The packed clip cache: round trip against the unpacked data, problems, resume, face caches."""

from __future__ import annotations

import argparse
import io
import json
import pickle
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pack_fixtures import SHARD_CLIPS, synth_sources
from PIL import Image

from finecliper.bench import commands
from finecliper.data.dataset import ClipDataset, synth_middle_locator
from finecliper.data.pack import write as pack_module
from finecliper.data.pack.format import PackSettings
from finecliper.data.pack.plan import PackSources
from finecliper.data.pack.read import PackedClipDataset, PackedClips, decode_jpeg
from finecliper.data.pack.write import pack_dataset
from finecliper.data.readers import read_dataset
from finecliper.data.synth import read_synth
from finecliper.data.transforms import ClipTransform
from finecliper.data.video import read_frames
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.cache import clip_dir
from finecliper.text.descriptions import load_descriptions


def assert_same_sample(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value.nan_to_num(-1.0), got[key].nan_to_num(-1.0)), key
        else:
            assert value == got[key], key


@pytest.mark.parametrize("frame_format", ["jpeg", "raw"])
@pytest.mark.parametrize("train", [True, False])
def test_packed_samples_equal_the_unpacked_ones(
    synth_root: Path, synth_packs: dict[str, Path], frame_format: str, train: bool
) -> None:
    index = read_synth(synth_root)
    records = index.records("train", 1) + index.records("test", 1)
    split = "train" if train else "test"
    texts = load_descriptions(synth_root / "descriptions.jsonl", split=split)
    transform = ClipTransform(24, train=train)
    options = {"transform": transform, "num_frames": 4, "train": train, "seed": 5}
    unpacked = ClipDataset(records, middle=synth_middle_locator, descriptions=texts, **options)
    packed = PackedClipDataset(records, pack=synth_packs[frame_format], **options)
    for epoch in (0, 1):
        unpacked.set_epoch(epoch)
        packed.set_epoch(epoch)
        for i in range(len(records)):
            assert_same_sample(unpacked[i], packed[i])
    assert packed[0]["description"] is not None and packed[0]["parsing"] is not None


def test_every_frame_and_middle_row_is_stored(
    synth_root: Path, synth_packs: dict[str, Path]
) -> None:
    pack = PackedClips(synth_packs["raw"])
    for record in read_synth(synth_root).records("test", 2):
        folder = record.path.parent
        position = pack.position(record.clip_id)
        clip = pack.read(position, list(range(6)))
        assert np.array_equal(clip.frames, read_frames(record.path))
        assert np.array_equal(clip.landmarks, np.load(folder / "landmarks.npy"))
        with np.load(folder / "parsing.npz") as archive:
            assert np.array_equal(clip.parsing, archive["maps"])


def test_jpeg_frames_are_the_source_files(synth_root: Path, synth_packs: dict[str, Path]) -> None:
    meta = json.loads((synth_packs["jpeg"] / "pack.json").read_text())
    first = Path(meta["paths"][0]) / "00000.jpg"
    shard = (synth_packs["jpeg"] / "shards" / "00000.bin").read_bytes()
    assert first.read_bytes() in shard  # copied byte for byte, not re-encoded


def test_dataset_index_is_the_readers(synth_root: Path, synth_packs: dict[str, Path]) -> None:
    read = read_synth(synth_root)
    packed = PackedClips(synth_packs["jpeg"]).dataset_index()
    assert packed.classes == read.classes and packed.dataset == "synth"
    assert packed.splits.keys() == read.splits.keys()
    for name, records in read.splits.items():
        assert packed.splits[name] == records, name


def test_descriptions_follow_the_split(synth_root: Path, tmp_path: Path) -> None:
    index = read_synth(synth_root)
    shown, hidden, broken = sorted({r.clip_id for rs in index.splits.values() for r in rs})[:3]
    lines = [
        {"clip_id": shown, "text": "label free"},
        {"clip_id": shown, "text": "label shown", "label_shown": True},
        {"clip_id": hidden, "text": "only text"},
        {"clip_id": broken, "text": "", "error": "timeout"},
    ]
    descriptions = tmp_path / "descriptions.jsonl"
    descriptions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sources = PackSources(synth_middle=True, descriptions=descriptions)
    pack_dataset(index, tmp_path / "pack", sources=sources, progress=False)
    pack = PackedClips(tmp_path / "pack")
    assert pack.descriptions(train=True) == {shown: "label shown", hidden: "only text"}
    assert pack.descriptions(train=False) == {shown: "label free", hidden: "only text"}


def test_unreadable_clips_and_missing_middle_data_are_recorded(
    synth_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    index = read_synth(root)
    broken, bare, misfit = index.records("train", 1)[:3]
    (broken.path / "00003.jpg").write_bytes(b"not a jpeg")
    (bare.path.parent / "landmarks.npy").unlink()
    np.savez(misfit.path.parent / "parsing.npz", maps=np.zeros((6, 16, 16), np.uint8))
    summary = pack_dataset(index, tmp_path / "pack", sources=synth_sources(root), progress=False)
    assert (summary.failed_clips, summary.clips_without_middle) == (2, 1)
    pack = PackedClips(tmp_path / "pack")
    problems = {p["path"]: p["problem"] for p in pack.meta["problems"]}
    assert "00003.jpg" in problems[broken.clip_id]
    assert "no landmarks.npy" in problems[bare.clip_id]
    assert "do not fit its 32x32 frames" in problems[misfit.clip_id]
    records = pack.dataset_index().records("train", 1)[:2]
    assert [r.num_frames for r in records] == [0, 6]  # kept in its split, with 0 frames
    dataset = PackedClipDataset(
        records, pack=pack, transform=ClipTransform(32, train=False), num_frames=4, train=False
    )
    assert "00003.jpg" in dataset[0]["error"]
    assert dataset[1]["parsing"] is None and dataset[1]["frames"].shape == (4, 3, 32, 32)


def test_an_interrupted_pack_resumes_to_the_same_files(
    synth_root: Path, synth_packs: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    original = pack_module._write_shard
    written = []

    def killed_after_one_shard(job):
        if written:
            raise KeyboardInterrupt
        written.append(job.shard)
        return original(job)

    monkeypatch.setattr(pack_module, "_write_shard", killed_after_one_shard)
    settings = PackSettings(frame_format="jpeg", shard_clips=SHARD_CLIPS)
    out = tmp_path / "pack"
    index = read_synth(synth_root)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(index, out, settings=settings, sources=synth_sources(synth_root))
    with pytest.raises(FineCLIPERError, match="incomplete pack"):
        PackedClips(out)
    monkeypatch.setattr(pack_module, "_write_shard", original)
    summary = pack_dataset(index, out, settings=settings, sources=synth_sources(synth_root))
    assert (summary.shards, summary.packed_shards) == (3, 2)
    for name in ("clips.npy", *(f"shards/0000{k}{s}" for k in range(3) for s in (".bin", ".json"))):
        assert (out / name).read_bytes() == (synth_packs["jpeg"] / name).read_bytes(), name


def test_parallel_packing_writes_the_same_files(
    synth_root: Path, synth_packs: dict[str, Path], tmp_path: Path
) -> None:
    settings = PackSettings(frame_format="jpeg", shard_clips=SHARD_CLIPS)
    index = read_synth(synth_root)
    summary = pack_dataset(
        index, tmp_path, settings=settings, sources=synth_sources(synth_root), workers=2
    )
    assert summary.packed_shards == 3
    for path in sorted(synth_packs["jpeg"].rglob("*")):
        name = path.relative_to(synth_packs["jpeg"])
        if path.is_file() and name.name != "pack.json":  # pack.json holds the creation time
            assert (tmp_path / name).read_bytes() == path.read_bytes(), name


def test_a_pack_folder_is_never_mixed(synth_root: Path, tmp_path: Path) -> None:
    index = read_synth(synth_root)
    out = tmp_path / "pack"
    pack_dataset(index, out, sources=synth_sources(synth_root), progress=False)
    with pytest.raises(ConfigError, match="settings"):
        pack_dataset(index, out, settings=PackSettings(frame_format="raw"), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FineCLIPERError, match="not a pack"):
        pack_dataset(index, tmp_path / "other", progress=False)
    with pytest.raises(FineCLIPERError, match="not a pack"):
        PackedClips(tmp_path / "other")


def write_video(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def write_cached_clip(cache: Path, clip_id: str, status: str, crops: np.ndarray | None) -> None:
    """One clip of a ``prepare faces`` cache, in its documented layout."""
    folder = clip_dir(cache, clip_id)  # ids may hold '/': the cache names folders safely
    folder.mkdir(parents=True)
    count = 0 if crops is None else len(crops)
    record = {"clip_id": clip_id, "status": status, "frames": count, "frames_dir": None}
    if crops is not None:
        (folder / "frames").mkdir()
        for position, crop in enumerate(crops):
            Image.fromarray(crop).save(folder / "frames" / f"{position:06d}.jpg", quality=90)
        side = crops.shape[1]
        points = np.random.default_rng(0).uniform(0, side - 1, (count, 68, 2))
        np.save(folder / "landmarks.npy", points.astype(np.float32))
        maps = np.random.default_rng(1).integers(0, 11, (count, side, side), dtype=np.uint8)
        np.savez_compressed(folder / "parsing.npz", maps=maps)
        record.update(frames_dir="frames", source_indices=list(range(0, 2 * count, 2)))
    (folder / "status.json").write_text(json.dumps(record))


def test_face_cache_crops_and_arrays_are_packed_together(tmp_path: Path) -> None:
    root = tmp_path / "custom"
    (root / "clips").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("cropped", "no_face", "uncached"):
        write_video(root / "clips" / f"{name}.mp4", rng.integers(0, 255, (6, 24, 32, 3), np.uint8))
    rows = ["path,label,split", *(f"clips/{n}.mp4,happy,train" for n in ("cropped", "no_face"))]
    (root / "manifest.csv").write_text("\n".join([*rows, "clips/uncached.mp4,sad,test"]) + "\n")
    (root / "classes.txt").write_text("happy\nsad\n")
    index = read_dataset("custom", root / "manifest.csv")
    ids = {r.path.stem: r.clip_id for rs in index.splits.values() for r in rs}
    cache = tmp_path / "cache"
    crops = rng.integers(0, 255, (3, 16, 16, 3), np.uint8)
    write_cached_clip(cache, ids["cropped"], "ok", crops)
    write_cached_clip(cache, ids["no_face"], "no_face", None)
    sources = PackSources(faces_cache=cache)
    settings = PackSettings(frame_format="raw")
    pack_dataset(index, tmp_path / "pack", settings=settings, sources=sources, progress=False)
    pack = PackedClips(tmp_path / "pack")
    cropped = pack.read(pack.position(ids["cropped"]), [0, 1, 2])
    folder = clip_dir(cache, ids["cropped"])
    expected = np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("frames/*.jpg"))])
    assert np.array_equal(cropped.frames, expected)
    assert np.array_equal(cropped.landmarks, np.load(folder / "landmarks.npy"))
    for name in ("no_face", "uncached"):  # the source video's frames, without middle data
        clip = pack.read(pack.position(ids[name]), list(range(6)))
        assert clip.parsing is None
        assert np.array_equal(clip.frames, read_frames(root / "clips" / f"{name}.mp4"))
    notes = {p["path"]: p["problem"] for p in pack.meta["problems"]}
    assert "not in the faces cache" in notes[ids["uncached"]]
    assert "no_face" in notes[ids["no_face"]]


def test_a_pack_travels_to_worker_processes_without_its_maps(
    synth_packs: dict[str, Path],
) -> None:
    pack = PackedClips(synth_packs["raw"])
    before = pack.read(3, [0, 5, 5])
    copy = pickle.loads(pickle.dumps(pack))
    assert len(pickle.dumps(pack)) < 20_000  # the index only; shards stay on disk
    after = copy.read(3, [0, 5, 5])
    assert np.array_equal(before.frames, after.frames)
    assert np.array_equal(before.parsing, after.parsing)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_decoding_matches_pil(mode: str) -> None:
    pixels = np.random.default_rng(4).integers(0, 255, (20, 28, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="JPEG", quality=85)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    blob = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    assert np.array_equal(decode_jpeg(blob), expected)


def test_pack_command_prints_a_json_summary(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["pack", "synth", str(synth_root), "--out", str(tmp_path), "--json"])
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 10 and summary["frames"] == 60 and summary["failed_clips"] == 0
    assert PackedClips(tmp_path).description(0, train=True)  # synth's descriptions by default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_from_a_pack_matches_cpu(synth_packs: dict[str, Path], monkeypatch) -> None:
    """Packed samples, collated, rendered on the GPU and run through a model there."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare fp32 with fp32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    from finecliper.bench.models import build_bench_model
    from finecliper.data.dataset import collate_clips
    from finecliper.runtime.inputs import to_model_inputs

    pack = PackedClips(synth_packs["jpeg"])
    records = pack.dataset_index().records("train", 1)[:4]
    dataset = PackedClipDataset(
        records, pack=pack, transform=ClipTransform(32, train=True), num_frames=4, train=True
    )
    batch = collate_clips([dataset[i] for i in range(len(records))])
    model = build_bench_model("full", "tiny", image_size=32, num_frames=4).eval()
    logits = {}
    for device in (torch.device("cpu"), torch.device("cuda")):
        inputs = to_model_inputs(
            batch, device, modalities=model.modalities, tokenizer=model.tokenizer
        )
        with torch.no_grad():
            logits[device.type] = model.to(device)(inputs).logits.cpu()
    assert torch.allclose(logits["cpu"], logits["cuda"], atol=1e-2)  # logits = cosine / 0.01
