"""Hostile and broken input (issue #16): generated malformed inputs of each kind, fed to the
commands in-process, must give one line on stderr and exit 2, never a traceback or exit 0;
nothing in a run folder is unpickled; no NaN gets into output or checkpoints."""

from __future__ import annotations

import errno
import json
import pickle
import random

import pytest
import torch
from safetensors.torch import save_file

from finecliper import cli
from finecliper.config import Config
from finecliper.errors import FineCLIPERError, InputError
from finecliper.io import read_text, write_json
from finecliper.runtime.checkpoint import FORMAT, load_checkpoint, read_checkpoint_info
from finecliper.text.descriptions import read_jsonl
from finecliper.text.probe import import_review
from finecliper.train.divergence import DivergedError, check_finite_loss, check_finite_weights
from finecliper.train.state import (
    LEGACY_STATE_FILE,
    STATE_FILE,
    load_training_state,
    save_training_state,
)

RNG = random.Random(16)
BAD_NUMBERS = ["nan", "inf", "-inf", ".nan", ".inf", "1e999", "-1e999", "NaN", "Infinity"]
FLOAT_KEYS = ["train.lr", "train.weight_decay", "train.warmup_epochs", "data.val_fraction"]
BAD_VALUES = ["\u0663", "[1, 2]", "{a: 1}", "'x'", "null", "abc", "1.5.2", "-"]
KEYS = ["data.fold", "train.epochs", "train.batch_size", "train.lr", "train.device"]


def _bytes(n: int) -> bytes:
    return bytes(RNG.randrange(256) for _ in range(n))


def _assert_one_line_error(code: int, capsys, expected: int = 2) -> str:
    err = capsys.readouterr().err
    assert code == expected, err
    assert "Traceback" not in err
    # Progress bars of model loading may precede it; the error itself is exactly one line.
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("finecliper: error:"), err
    return lines[0]


@pytest.mark.parametrize(
    "override",
    [f"{key}={value}" for key in FLOAT_KEYS for value in BAD_NUMBERS]
    + [f"{key}={value}" for key in KEYS for value in BAD_VALUES]
    + [f"{key}=1" for key in ("nosection.x", "train", "train.nokey", "=1", "train.lr.x")],
)
def test_bad_overrides_are_one_line_exit_2(override, capsys, tmp_path):
    code = cli.main(["train", "synth", f"data.root={tmp_path}", override, "--out", str(tmp_path)])
    _assert_one_line_error(code, capsys)
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize("seed", range(12))
def test_garbage_preset_files_are_one_line_exit_2(seed, capsys, tmp_path):
    rng = random.Random(seed)
    kinds = [
        _bytes(rng.randrange(1, 200)) + b"\xff\xfe",  # not UTF-8
        b"train: [unclosed\n",
        b"- a list\n- not a mapping\n",
        b"train:\n  lr: .nan\n",
        b"data:\n  fold: 99\n",
        b"train: 3\n",
    ]
    preset = tmp_path / "preset.yaml"
    preset.write_bytes(kinds[seed % len(kinds)])
    code = cli.main(["train", str(preset), f"data.root={tmp_path}", "--out", str(tmp_path / "o")])
    line = _assert_one_line_error(code, capsys)
    assert str(preset) in line or "data.fold" in line or "train" in line


def test_missing_preset_path_does_not_fall_back_to_the_builtin(capsys, tmp_path):
    code = cli.main(["train", str(tmp_path / "synth.yaml")])
    assert "no such file" in _assert_one_line_error(code, capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "check", "dfew", "/x", "--fold", value]
        for value in ("99", "0", "-1", "abc", "\u0663", "nan")
    ]
    + [["data", "synth", "--out", "/x", "--clips", v] for v in ("0", "-5", "1e3", "x")]
    + [["demo", "--clips", v] for v in ("0", "-5", "inf")]
    + [["cv", "synth", "--folds", v] for v in ("abc", "1,x", "99", "0", "1,,2", "\u0663")]
    + [["sweep", "fixed-weights", "synth", "--weights", v] for v in ("nan", "0", "1", "a", "2")]
    + [["bench", "--repeats", v] for v in ("0", "-1", "nan")],
)
def test_bad_numeric_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: argument" in err


@pytest.mark.parametrize("value", ["7", "nan", "-0.1", "inf", "x"])
def test_refine_threshold_outside_0_1_is_refused(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["refine", str(tmp_path / "in.jsonl"), "--threshold", value])
    assert exit_info.value.code == 2
    assert "--threshold" in capsys.readouterr().err


def test_non_finite_float_options_are_refused_for_every_command(capsys):
    # predict's --fps is a plain float option: the top-level check refuses inf and nan there too.
    assert cli.main(["predict", "ckpt.safetensors", "video.mp4", "--fps", "inf"]) == 2
    error = capsys.readouterr().err
    assert error == "finecliper: error: --fps inf: expected a finite number\n"


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cv", "synth", "--folds", "abc"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "--folds" in error and "--help" in error


def _checkpoint(path, metadata=None, tensors=None):
    good = {
        "format": FORMAT,
        "config": json.dumps(Config().model_dump(mode="json")),
        "classes": json.dumps(["happy", "sad"]),
        "extra": "{}",
    }
    meta = {**good, **(metadata or {})}
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(tensors or {"w": torch.zeros(2)}, str(path), metadata=meta)
    return path


CHECKPOINT_DEFECTS = [
    {"format": None},
    {"format": "other"},
    {"config": None},
    {"classes": None},
    {"extra": None},
    {"config": "{not json"},
    {"classes": "[1, 2]"},
    {"classes": "[]"},
    {"classes": "{}"},
    {"extra": "[]"},
    {"config": "[]"},
    {"config": json.dumps({"train": {"lr": "fast"}})},
]


@pytest.mark.parametrize("defect", CHECKPOINT_DEFECTS)
def test_checkpoints_with_broken_metadata_are_refused(defect, tmp_path, capsys):
    path = _checkpoint(tmp_path / "c.safetensors", defect)
    with pytest.raises(FineCLIPERError) as info:
        read_checkpoint_info(path)
    assert info.value.exit_code == 2 and str(path) in str(info.value)
    code = cli.main(["eval", str(path), "--out", str(tmp_path / "e")])
    _assert_one_line_error(code, capsys)


@pytest.mark.parametrize("seed", range(10))
def test_garbage_and_truncated_checkpoints_are_refused(seed, tmp_path, capsys):
    good = _checkpoint(tmp_path / "good.safetensors").read_bytes()
    rng = random.Random(seed)
    variants = [
        _bytes(rng.randrange(0, 64)),
        good[: rng.randrange(0, len(good))],
        (10**12).to_bytes(8, "little") + good[8:],  # header length far past the end
        good[:8] + b"[" + good[9:],  # header not a JSON object
    ]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(variants[seed % len(variants)])
    code = cli.main(["eval", str(path), "--out", str(tmp_path / "e")])
    assert str(path) in _assert_one_line_error(code, capsys)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_checkpoint_with_non_finite_weights_is_refused(bad, tmp_path):
    weights = torch.ones(3)
    weights[1] = bad
    path = _checkpoint(tmp_path / "nan.safetensors", tensors={"adapter.weight": weights})
    with pytest.raises(InputError, match=r"adapter\.weight holds NaN or infinite"):
        load_checkpoint(path)


def test_training_state_round_trips_without_pickle(tmp_path):
    param = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = torch.optim.AdamW([param], lr=0.1, betas=(0.8, 0.9))
    param.grad = torch.randn(4, 3)
    optimizer.step()
    state = {"epoch": 2, "optimizer": optimizer.state_dict(), "history": [{"val": None}]}
    path = tmp_path / STATE_FILE
    save_training_state(path, state)
    loaded = load_training_state(path)
    assert loaded["epoch"] == 2 and loaded["history"] == [{"val": None}]
    restored = torch.optim.AdamW([torch.nn.Parameter(param.detach().clone())], lr=1.0)
    restored.load_state_dict(loaded["optimizer"])
    ours, theirs = restored.state_dict(), optimizer.state_dict()
    assert list(ours["state"]) == [0]
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(ours["state"][0][key], theirs["state"][0][key])
    assert ours["param_groups"][0]["lr"] == 0.1
    assert torch.equal(loaded["rng"]["torch"], torch.get_rng_state())


class _Payload:
    def __reduce__(self):
        return (open, (str(MARKER), "w"))


MARKER = None


def test_old_pickle_state_is_refused_not_unpickled(tmp_path, capsys, tiny_synth, tiny_backbone):
    global MARKER
    MARKER = tmp_path / "code_ran"
    run = tmp_path / "run"
    run.mkdir()
    (run / LEGACY_STATE_FILE).write_bytes(pickle.dumps({"epoch": _Payload()}))
    argv = ["train", "synth", f"data.root={tiny_synth}", f"model.backbone={tiny_backbone}"]
    code = cli.main([*argv, "--out", str(run), "--resume"])
    assert "old pickle format" in _assert_one_line_error(code, capsys)
    code = cli.main([*argv, "--out", str(run)])
    assert "old pickle format" in _assert_one_line_error(code, capsys)
    assert not MARKER.exists()


@pytest.mark.parametrize("seed", range(6))
def test_corrupt_training_state_is_refused(seed, tmp_path):
    path = tmp_path / STATE_FILE
    save_training_state(path, {"epoch": 1, "w": torch.ones(2)})
    data = path.read_bytes()
    rng = random.Random(seed)
    path.write_bytes(
        [_bytes(40), data[: rng.randrange(len(data))], data[:8] + b"!" + data[9:]][seed % 3]
    )
    with pytest.raises(InputError, match="training state"):
        load_training_state(path)


def test_divergence_stops_with_a_clear_error(tmp_path):
    check_finite_loss(torch.tensor(1.0), 0, 0, tmp_path)
    with pytest.raises(DivergedError, match="loss is nan at epoch 3, batch 5"):
        check_finite_loss(torch.tensor(float("nan")), 2, 4, tmp_path)
    with pytest.raises(DivergedError, match=r"non-finite weights after epoch 1 .*adapter"):
        check_finite_weights(
            {"ok": torch.ones(2), "adapter": torch.tensor([float("inf")])}, 0, tmp_path
        )


def test_json_outputs_are_standard(tmp_path):
    write_json(tmp_path / "ok.json", {"a": [1.0, None]})
    with pytest.raises(FineCLIPERError, match=r"results\.1\.uar is not a finite number"):
        write_json(tmp_path / "bad.json", {"results": [{"uar": 0.5}, {"uar": float("nan")}]})
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("line", [1, 2, 5])
def test_non_utf8_text_files_name_file_and_line(line, tmp_path):
    lines = [b'{"clip_id": "a", "text": "ok"}'] * 5
    lines[line - 1] = b'{"clip_id": "b", "text": "caf\xe9"}'
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InputError, match=rf"d\.jsonl:{line}: not valid utf-8"):
        read_jsonl(jsonl)
    review = tmp_path / "r.csv"
    review.write_bytes(b"clip_id,decision,reviewed_text\n" * line + b"a,keep,\xff\n")
    with pytest.raises(InputError, match=rf"r\.csv:{line + 1}: not valid utf-8"):
        import_review(review)
    assert read_text(review, encoding="latin-1")


def test_nan_constants_in_descriptions_are_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"clip_id": "a", "text": "x", "score": NaN}\n')
    with pytest.raises(FineCLIPERError, match=r"d\.jsonl:1: not valid JSON"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/ro/metrics.json"), 1),
        (OSError(errno.ENOSPC, "No space left on device", "/full/x.json"), 1),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/out/metrics.json"), 2),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/gone/a.csv"), 2),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2),
        (ValueError("could not convert string to float: 'x'\nsecond line"), 2),
        (RuntimeError("boom"), 1),
    ],
)
def test_any_error_in_a_command_is_one_line(error, expected, monkeypatch, capsys, tmp_path):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("finecliper.train.loop.train", fail)
    code = cli.main(["train", "synth", f"data.root={tmp_path}", "--out", str(tmp_path)])
    line = _assert_one_line_error(code, capsys, expected)
    if isinstance(error, OSError):
        assert error.filename in line


def test_debug_flag_and_environment_show_the_traceback(monkeypatch, capsys, tmp_path):
    argv = ["train", str(tmp_path / "none.yaml")]
    assert cli.main(["--debug", *argv]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert cli.main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_dataset_without_test_split_is_a_problem_and_train_refuses(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "mine"
    (root / "clips" / "a").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 40, 90, 120)).save(root / "clips" / "a" / f"{i:03d}.png")
    (root / "m.csv").write_text("path,label,split\nclips/a,happy,train\n")
    assert cli.main(["data", "check", "custom", str(root / "m.csv"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"path": str(root / "m.csv"), "problem": "split test has no clips"} in summary[
        "problems"
    ]
    code = cli.main(
        ["train", "custom", f"data.root={root / 'm.csv'}", "--out", str(tmp_path / "r")]
    )
    assert "no test clips" in _assert_one_line_error(code, capsys)
    assert not (tmp_path / "r" / "checkpoints").exists()


# --- issue #16, second pass: images, manifests, text files, JSON output ----------------------


def _png(pixels, bit_depth: int, colour_type: int) -> bytes:
    """A PNG written by hand (PIL cannot save every 16-bit colour type)."""
    import struct
    import zlib

    rows = b"".join(
        b"\x00" + row.astype(">u2" if bit_depth == 16 else "u1").tobytes() for row in pixels
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(
        ">IIBBBBB", pixels.shape[1], pixels.shape[0], bit_depth, colour_type, 0, 0, 0
    )
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("seed", range(12))
def test_generated_16bit_and_palette_frames_decode_right(seed, tmp_path):
    import numpy as np
    from PIL import Image

    from finecliper.data.video import read_frames

    rng = np.random.default_rng(seed)
    height, width = rng.integers(2, 24, size=2)
    grey = rng.integers(0, 65536, size=(height, width), dtype=np.uint16)
    (tmp_path / "0.png").write_bytes(_png(grey, 16, 0))
    palette = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    indices = rng.integers(0, 4, size=(height, width), dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette.flatten().tolist())
    image.save(tmp_path / "1.png", transparency=int(rng.integers(0, 4)))
    frames = read_frames(tmp_path)
    assert (frames[0] == np.round(grey / 257.0).astype(np.uint8)[..., None]).all()
    assert (frames[1] == palette[indices]).all()


@pytest.mark.parametrize("mode", ["I", "F"] * 3)
def test_generated_frames_without_an_8bit_reading_are_refused_by_name(mode, tmp_path, capsys):
    from PIL import Image

    clip = tmp_path / "mine" / "clips" / "a"
    clip.mkdir(parents=True)
    Image.new(mode, (8, 8)).save(clip / "0.tiff")
    (clip / "0.tiff").rename(clip / "0.png")
    manifest = tmp_path / "mine" / "m.csv"
    manifest.write_text("path,label,split\nclips/a,happy,train\nclips/a,sad,test\n")
    assert cli.main(["data", "check", "custom", str(manifest), "--deep", "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any(p["path"] == str(clip / "0.png") for p in problems)
    from finecliper.data.video import ImageReadError, load_frame_image

    with pytest.raises(ImageReadError, match=rf"0\.png: unreadable image \(.*mode {mode}\)"):
        load_frame_image(clip / "0.png", None)


def _manifest_tree(tmp_path):
    from PIL import Image

    root = tmp_path / "mine"
    for name in ("a", "b"):
        (root / "clips" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (90, 40, 9)).save(root / "clips" / name / "0.png")
    return root


@pytest.mark.parametrize("seed", range(12))
def test_generated_bad_folds_and_fields_are_data_check_problems(seed, tmp_path, capsys):
    rng = random.Random(seed)
    root = _manifest_tree(tmp_path)
    folds = rng.randrange(2, 6)
    rows = [
        f"clips/{c},happy,{s},{k}"
        for k in range(1, folds + 1)
        for c, s in (("a", "train"), ("b", "test"))
    ]
    bad_fold = rng.choice(
        ["0", "-1", str(-rng.randrange(2, 99)), str(folds + rng.randrange(2, 99)), "x", "1.5"]
    )
    lines = ["path,label,split,fold", *rows, f"clips/a,happy,test,{bad_fold}"]
    lines.append(f"clips/b,happy,train,1,{rng.choice(['extra', '0', 'nan'])}")
    manifest = root / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    assert cli.main(["data", "check", "custom", str(manifest), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    found = {p["path"]: p["problem"] for p in summary["problems"]}
    fold_line, extra_line = f"{manifest}:{len(lines) - 1}", f"{manifest}:{len(lines)}"
    assert "fold" in found[fold_line] and bad_fold in found[fold_line]
    assert "more than the header" in found[extra_line]
    assert sorted(summary["splits"]) == sorted(
        f"fold{k}/{s}" for k in range(1, folds + 1) for s in ("train", "test")
    )


@pytest.mark.parametrize("seed", range(8))
def test_generated_unknown_columns_are_data_check_problems(seed, tmp_path, capsys):
    rng = random.Random(seed)
    root = _manifest_tree(tmp_path)
    column = rng.choice(["flod", "notes", "Fold2", "caption", "lable"])
    manifest = root / "m.csv"
    manifest.write_text(f"path,label,split,{column}\nclips/a,happy,train,x\nclips/b,sad,test,y\n")
    assert cli.main(["data", "check", "custom", str(manifest), "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {
        "path": f"{manifest}:1",
        "problem": f"unknown column(s) {column.lower()} ignored "
        "(a manifest has path,label,split[,fold])",
    } in problems


@pytest.mark.parametrize("seed", range(10))
def test_generated_non_utf8_manifest_and_classes_name_file_and_line(seed, tmp_path, capsys):
    rng = random.Random(seed)
    root = _manifest_tree(tmp_path)
    rows = [b"path,label,split"] + [b"clips/a,happy,train", b"clips/b,sad,test"] * rng.randrange(
        1, 4
    )
    classes = [b"happy", b"sad", b"calm"]
    target, lines = rng.choice([("m.csv", rows), ("classes.txt", classes)])
    line = rng.randrange(1, len(lines) + 1)
    lines = list(lines)
    lines[line - 1] += bytes([rng.randrange(0x80, 0xC0)])  # a lone continuation byte
    (root / "m.csv").write_bytes(b"\n".join(rows if target != "m.csv" else lines) + b"\n")
    (root / "classes.txt").write_bytes(
        b"\n".join(classes if target != "classes.txt" else lines) + b"\n"
    )
    code = cli.main(["data", "check", "custom", str(root / "m.csv")])
    assert f"{root / target}:{line}: not valid utf-8" in _assert_one_line_error(code, capsys)


def test_api_json_with_nan_is_refused_not_sent(capsys):
    from finecliper.serve.server import _Handler

    sent = []
    handler = _Handler.__new__(_Handler)
    handler.command, handler.path = "GET", "/api/x"
    handler._send = lambda body, kind, status, headers: sent.append((body, status))
    handler._guarded(lambda path: handler._json({"uar": float("nan")}))
    [(body, status)] = sent
    assert status == 422 and b"NaN" not in body
    assert json.loads(body) == {"error": "API response: uar is not a finite number"}


def test_faces_json_summary_with_nan_is_one_line_error(monkeypatch, capsys, tmp_path):
    from types import SimpleNamespace

    summary = SimpleNamespace(copied=1, already_there=0, sources=1, seconds=float("nan"))
    monkeypatch.setattr("finecliper.face.pipeline.merge_caches", lambda out, sources: summary)
    code = cli.main(["prepare", "merge", str(tmp_path / "o"), str(tmp_path), "--json"])
    assert "seconds is not a finite number" in _assert_one_line_error(code, capsys, 1)
    assert "NaN" not in capsys.readouterr().out
