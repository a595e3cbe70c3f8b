"""CLI: ``finecliper prepare faces``, ``prepare merge`` and ``prepare qc``."""

from __future__ import annotations

import argparse
from pathlib import Path

from finecliper.data.cli_args import add_dataset_arguments, reader_options
from finecliper.errors import ConfigError
from finecliper.io import dumps_json


def register(commands: argparse._SubParsersAction) -> None:
    prepare = commands.add_parser("prepare", help="offline preparation of the middle-level inputs")
    actions = prepare.add_subparsers(dest="prepare_command", metavar="ACTION", required=True)
    _register_faces(actions)
    _register_merge(actions)
    _register_qc(actions)


def _register_faces(actions: argparse._SubParsersAction) -> None:
    faces = actions.add_parser(
        "faces",
        help="landmarks and face-parsing maps for every clip of a dataset",
        description="Per frame of every clip: MediaPipe face mesh (478 points), its iBUG 68-point "
        "subset and a face-parsing label map, stored compactly in CACHE (see "
        "finecliper.face.pipeline). Videos are cropped to the one followed face. Resumable: a "
        "rerun skips finished clips. The throughput (frames per second and per CPU second) is "
        "part of the summary.",
    )
    add_dataset_arguments(faces)
    faces.add_argument("--out", type=Path, required=True, help="cache folder")
    faces.add_argument("--fold", type=int, default=None, help="only this fold's clips")
    faces.add_argument("--shard", default="0/1", help="I/N: only clips with crc32(id) %% N == I")
    faces.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    faces.add_argument("--max-frames", type=int, default=None, help="subsample longer clips")
    faces.add_argument(
        "--crop",
        choices=("auto", "always", "never"),
        default="auto",
        help="crop the followed face: auto = videos only (frame folders are face crops)",
    )
    faces.add_argument("--crop-size", type=int, default=224, help="crop side in pixels")
    faces.add_argument("--margin", type=float, default=0.25, help="crop margin per side")
    faces.add_argument(
        "--parser",
        default="mesh",
        help="face parser: mesh (default: filled face-mesh contours, no hair) or bisenet "
        "(a face-parsing.PyTorch BiSeNet checkpoint given by --parser-weights)",
    )
    faces.add_argument("--parser-weights", type=Path, default=None, help="parser weights file")
    faces.add_argument("--no-iris", action="store_true", help="468-point mesh without irises")
    faces.add_argument("--retry-failed", action="store_true", help="redo clips that failed")
    faces.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    faces.set_defaults(handler=_run_faces)


def _register_merge(actions: argparse._SubParsersAction) -> None:
    merge = actions.add_parser(
        "merge",
        help="join face caches made by shards",
        description="Copy the finished clips of shard caches into OUT (which may be one of them) "
        "after checking that all were made with the same dataset, tools and settings.",
    )
    merge.add_argument("out", type=Path)
    merge.add_argument("sources", type=Path, nargs="+")
    merge.add_argument("--json", action="store_true")
    merge.set_defaults(handler=_run_merge)


def _register_qc(actions: argparse._SubParsersAction) -> None:
    qc = actions.add_parser(
        "qc",
        help="montage of sample clips: frame, parsing overlay, landmarks",
        description="Write a PNG with sample clips of a face cache, each frame shown beside its "
        "parsing overlay and its landmarks.",
    )
    qc.add_argument("cache", type=Path)
    qc.add_argument("--out", type=Path, required=True, help="PNG file to write")
    qc.add_argument("--clips", type=int, default=8)
    qc.add_argument("--frames", type=int, default=3, help="frames per clip")
    qc.add_argument("--tile", type=int, default=128, help="tile size in pixels")
    qc.set_defaults(handler=_run_qc)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: expected 0 <= I < N")
    return index, count


def _run_faces(args: argparse.Namespace) -> int:
    from finecliper.data.readers import read_dataset
    from finecliper.face.analysis import FacesSettings
    from finecliper.face.pipeline import run_faces, unique_records

    shard = parse_shard(args.shard)
    settings = FacesSettings(
        crop=args.crop,
        crop_size=args.crop_size,
        margin=args.margin,
        max_frames=args.max_frames,
        parser=args.parser,
        parser_weights=None if args.parser_weights is None else str(args.parser_weights),
        refine_landmarks=not args.no_iris,
    )
    index = read_dataset(args.dataset, args.root, fold=args.fold, **reader_options(args))
    summary = run_faces(
        unique_records(index),
        args.out,
        settings,
        dataset=args.dataset,
        shard=shard,
        workers=args.workers,
        retry_failed=args.retry_failed,
        progress=not args.json,
    )
    result = {"out": str(args.out), "reader_problems": len(index.problems), **summary.as_dict()}
    if args.json:
        print(dumps_json(result))
        return 0
    print(
        f"faces: {summary.clips} clips in shard {summary.shard}: {summary.ok} ok, "
        f"{summary.no_face} without a face, {summary.failed} failed "
        f"({summary.skipped} done before) -> {args.out}"
    )
    print(
        f"  {summary.frames} frames in {summary.seconds:.1f} s: {summary.frames_per_second:.1f} "
        f"frames/s, {summary.frames_per_cpu_second:.1f} frames per CPU second"
    )
    for failure in summary.failures[:20]:
        print(f"  failed: {failure['clip_id']}: {failure['error']}")
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    from finecliper.face.pipeline import merge_caches

    summary = merge_caches(args.out, args.sources)
    if args.json:
        print(dumps_json({"out": str(args.out), **vars(summary)}))
    else:
        print(
            f"merge: {summary.copied} clips copied, {summary.already_there} already there, "
            f"from {summary.sources} caches -> {args.out}"
        )
    return 0


def _run_qc(args: argparse.Namespace) -> int:
    from finecliper.face.qc import write_qc_montage

    summary = write_qc_montage(
        args.cache, args.out, clips=args.clips, frames=args.frames, tile=args.tile
    )
    print(f"qc: {summary.clips_shown} clips -> {summary.out} ({summary.counts})")
    return 0
