"""Pre-train the small CLIP-style backbone that ships inside finecliper for ``finecliper demo``.

The demo trains FineCLIPER*† on SynthDFER with a frozen backbone, as the real method freezes
CLIP ViT-B/16. No CLIP weights can be downloaded on the machines the demo must run on, and a
ViT-B/16 is far too slow on two CPU cores, so this script builds a tiny ``transformers.CLIPModel``
(ViT, 112x112 input, 16x16 patches) and pre-trains it on a SynthDFER generated with a different
seed (1234) than the demo's (0), so the demo's clips are never seen.

Objectives (all on the same forward pass of a few frames per clip):

- CLIP's symmetric contrastive loss between the frame stack (mean of its unit frame
  embeddings) and one of the clip's two movement descriptions, drawn per sample: SynthDFER's
  own (in the role of the MLLM's) or the landmark template backend's (the text ``predict``
  makes for new videos, and the demo trains with); a share of the captions are class prompts
  ("A person with an expression of happiness."), the stand-in for the emotion words CLIP met on
  the web, without which the label words of the PN descriptors would be untrained embeddings.
- Face read-outs from the generator's ground truth, with heads used only here: the parsing
  class of every 4x4-pixel cell from its patch token, the 68 landmarks and the 15 action units
  from the image embedding. Contrastive learning alone did not work at this scale: the tiny
  ViT memorised the identity of each training clip (chance-level probe and held-out retrieval
  after 500 steps), and even plain landmark or action-unit regression from the embedding did not
  start to generalise within 1,000 steps; the dense per-patch parsing loss is what makes the
  patch tokens learn face geometry within minutes, and the rest builds on it.
- The expression class of the pre-training clips (their labels; never the demo's seed): from
  the change between a clip's first and later frame embeddings (a linear read-out head used
  only here), and from each later frame alone against the class prompts. Without these the
  frozen frames carried little expression (a linear probe on the demo's fold 1 reached 25 %
  UAR from mean-pooled frames, 43 % with the first-to-last change, and the demo's ``base``
  36 %): the other objectives teach face geometry, not which of its changes tell the classes
  apart.

The bundled backbone was made in three stages: the objectives above without the expression
losses on ground-truth landmarks and parsing (1,500 steps from random weights); then all of
them for 2,400 steps at half the learning rate from those weights (``--init``) on the faces
cache that ``prepare faces`` measured on the pre-training clips (``--pretrain-faces``), as the
demo's inputs are measured; then 1,000 more steps at 3e-4 from the second stage, once the
template backend's version 2 had changed the measured descriptions the text tower reads.
``metadata.json`` records every stage (``initialised_from``, nested).

Frames get the demo's own train transform (random resized crop and flip, shared by a clip's
frames, parsing maps and landmarks), and a share of the samples are shown as the parsing or
landmark renderings that the demo's middle-level streams feed through the same tower.

The tokenizer is a byte-level BPE in CLIP's format (vocab.json + merges.txt, "</w>" word ends,
<|startoftext|> / <|endoftext|>), learnt here from the descriptions plus the label-prompt
vocabulary. Context length 128: a fifth of the SynthDFER descriptions exceed CLIP's 77 tokens.

Outputs (``--out``, by default the package's ``assets/demo_backbone``): config.json,
model.safetensors (float32), tokenizer.json, tokenizer_config.json, vocab.json, merges.txt,
preprocessor_config.json, metadata.json (data, settings, losses, timings, retrieval, read-out
and probe numbers) and a README.md written from it.

``--probe`` adds the linear-probe check on demo-seed clips (fold 1: logistic regression on the
training clips, UAR/WAR on the test clips) from frozen image features mean-pooled over 16
frames, and from that mean next to the change from the first to the last frames; the same for a
randomly initialised backbone. ``--probe-only`` probes an existing ``--out``.

The architecture config, label prompts and LR schedule are the package's
(``Architecture.to_config``, ``ModelConfig``'s templates, ``train.schedule.warmup_cosine``). The
bundled weights predate that: their warm-up rose as ``(step + 1) / warmup`` instead of
``(step + 1) / (warmup + 1)``, so a rerun gives slightly different weights.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine: with the default (spinning) OpenMP
threads, 2 threads ran 6x slower than 1 when other jobs held the cores.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python scripts/pretrain_demo_backbone.py \
        --probe
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
from demo_backbone.bpe import check_tokenizer, save_tokenizer, tokenizer_merges, train_tokenizer
from demo_backbone.clips import ClipSet, generate, load_synth
from demo_backbone.evaluation import (
    description_features,
    face_readout,
    frame_embeddings,
    linear_probe,
    probe_features,
    retrieval,
    zero_shot,
)
from demo_backbone.pretraining import FaceHeads, TrainSettings, build_model, pretrain
from demo_backbone.settings import BACKBONE, DEFAULT_OUT, REPO
from transformers import CLIPModel, CLIPTokenizer

from finecliper.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
)
from finecliper.errors import FineCLIPERError
from finecliper.io import write_json, write_text


def held_out_split(num_clips: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(num_clips, generator=torch.Generator().manual_seed(seed))
    held = max(1, int(num_clips * fraction))
    return order[held:].sort().values, order[:held].sort().values


def cpu_seconds() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "user_seconds": round(own.ru_utime + children.ru_utime, 1),
        "system_seconds": round(own.ru_stime + children.ru_stime, 1),
    }


def save_backbone(model: CLIPModel, tokenizer: CLIPTokenizer, metadata: dict, out: Path) -> None:
    """Write into a sibling folder, then swap it in: a crash never leaves half a backbone."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging, safe_serialization=True)
    save_tokenizer(tokenizer, tokenizer_merges(tokenizer), staging)
    write_json(
        staging / "preprocessor_config.json",
        preprocessor_config(model.config.vision_config.image_size),
    )
    write_json(staging / "metadata.json", metadata)
    write_text(staging / "README.md", readme(metadata))
    for file in staging.iterdir():  # package data must be readable by every user
        file.chmod(0o644)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def preprocessor_config(size: int) -> dict:
    """CLIPImageProcessor settings (written by hand: the class needs torchvision in v5)."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,  # bicubic
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
    }


def readme(metadata: dict) -> str:
    pre = metadata["pretraining"]
    shape = metadata["architecture"]
    lines = [
        "# finecliper demo backbone",
        "",
        "A small CLIP-style `transformers.CLIPModel` (ViT, "
        f"{shape['image_size']}x{shape['image_size']} input, {shape['patch_size']}-pixel "
        f"patches, {shape['vision_layers']} vision and {shape['text_layers']} text layers of "
        f"width {shape['vision_width']}, {shape['context_length']}-token context) with its own "
        "byte-level BPE tokenizer in CLIP's format, for `finecliper demo`, where it is frozen as "
        "CLIP is in the real method. Built by `scripts/pretrain_demo_backbone.py` on SynthDFER "
        f"generated with seed {pre['data_seed']} ({pre['data_clips']} clips); the demo uses seed "
        "0, so its clips are never seen.",
        "",
        "Pre-training: CLIP's symmetric contrastive loss between a clip's motion embedding "
        "(mean unit embedding of later frames minus that of its first frame) and one of its two"
        " movement descriptions (SynthDFER's own, or the landmark template backend's, the text "
        "`predict` and the demo use) or a class prompt, plus read-outs of the generator's "
        "ground truth used only for pre-training (parsing classes per 4x4-pixel cell from the "
        "patch tokens; landmarks and action units from the image embedding; the clip's movement"
        " from the description's text embedding), and the pre-training clips' expression "
        "class (from the change between a clip's first and later frame embeddings, and from "
        "each later frame against the class prompts). Frames get the demo's crop-and-flip "
        "transform; a share are shown as the parsing and landmark renderings of the demo's "
        "middle-level streams.",
        "",
        "Load with `CLIPModel.from_pretrained(dir)` and `CLIPTokenizer.from_pretrained(dir)` "
        "(`finecliper.assets_paths.demo_backbone_dir()` gives `dir`); images are RGB, "
        "CLIP mean/std normalised (preprocessor_config.json). Weights are float32.",
        "",
        "Numbers, all measured by the script (full record, losses included, in metadata.json):",
        "",
        "```",
        json.dumps(
            {
                "parameters": metadata["parameters"],
                "tokenizer": metadata["tokenizer"],
                "pretraining": {k: v for k, v in pre.items() if k != "losses"},
                "retrieval": metadata.get("retrieval"),
                "face_readout": metadata.get("face_readout"),
                "zero_shot": metadata.get("zero_shot"),
                "probe": metadata.get("probe"),
            },
            indent=2,
        ),
        "```",
        "",
    ]
    return "\n".join(lines)


def run_pretraining(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    size = BACKBONE.image_size
    root = args.pretrain_data or generate(args.work, args.clips, args.data_seed, size)
    clips = load_synth(root, size, ground_truth=True, faces_cache=args.pretrain_faces)
    train_index, held_index = held_out_split(len(clips.ids), 0.1, args.seed)
    train_clips, held_clips = clips.subset(train_index), clips.subset(held_index)
    model, tokenizer, earlier = starting_point(args, train_clips)
    settings = train_settings(args)
    train_start = time.perf_counter()
    losses, heads = pretrain(model, tokenizer, train_clips, settings)
    train_seconds = time.perf_counter() - train_start
    metadata = {
        "format": 1,
        "architecture": asdict(replace(BACKBONE, vocab_size=len(tokenizer))),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": tokenizer_record(tokenizer, clips),
        "pretraining": {
            "data_seed": args.data_seed,
            "data_clips": len(clips.ids),
            "train_clips": len(train_clips.ids),
            "held_out_clips": len(held_clips.ids),
            "initialised_from": earlier,
            **asdict(settings),
            "train_wall_seconds": round(train_seconds, 1),
            "total_wall_seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads(),
            **cpu_seconds(),
            "final_losses": losses[-1],
            "losses": losses,
        },
        **held_out_evaluation(model, tokenizer, heads, held_clips),
    }
    save_backbone(model, tokenizer, metadata, args.out)
    shown = ("tokenizer", "retrieval", "face_readout", "zero_shot")
    print(json.dumps({k: metadata[k] for k in shown}, indent=2))


def starting_point(
    args: argparse.Namespace, train_clips: ClipSet
) -> tuple[CLIPModel, CLIPTokenizer, dict | None]:
    """A new model with a tokenizer learnt from the descriptions, or with ``--init`` an earlier
    backbone and its tokenizer, with that backbone's pre-training record (losses left out)."""
    if args.init is None:
        texts = train_clips.texts + train_clips.template_texts
        tokenizer = train_tokenizer(texts, BACKBONE.context_length)
        return build_model(tokenizer, args.seed), tokenizer, None
    model = CLIPModel.from_pretrained(args.init)
    tokenizer = CLIPTokenizer.from_pretrained(args.init)
    check_tokenizer(tokenizer, model.config.text_config.vocab_size)
    record = json.loads((args.init / "metadata.json").read_text(encoding="utf-8"))["pretraining"]
    return model, tokenizer, {k: v for k, v in record.items() if k != "losses"}


def train_settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        frames_per_sample=args.frames_per_sample,
        lr=args.lr,
        prompt_fraction=args.prompt_fraction,
        render_fraction=args.render_fraction,
        parsing_weight=args.parsing_weight,
        landmark_weight=args.landmark_weight,
        movement_weight=args.movement_weight,
        text_weight=args.text_weight,
        expression_weight=args.expression_weight,
        frame_prompt_weight=args.frame_prompt_weight,
        seed=args.seed,
    )


def tokenizer_record(tokenizer: CLIPTokenizer, clips: ClipSet) -> dict[str, int]:
    """The learnt tokenizer's size and how the descriptions fit its context."""
    lengths = [len(ids) for ids in tokenizer(clips.texts + clips.template_texts).input_ids]
    return {
        "vocab_size": len(tokenizer),
        "merges": len(tokenizer_merges(tokenizer)),
        "description_tokens_max": max(lengths),
        "descriptions_truncated": sum(n > BACKBONE.context_length for n in lengths),
    }


def held_out_evaluation(
    model: CLIPModel, tokenizer: CLIPTokenizer, heads: FaceHeads, held_clips: ClipSet
) -> dict[str, dict]:
    """Retrieval, face read-outs and zero-shot accuracy on the clips held out of pre-training."""
    features = frame_embeddings(model, held_clips.frames)
    text = description_features(model, tokenizer, held_clips)
    return {
        "retrieval": retrieval(model, tokenizer, held_clips, features),
        "face_readout": face_readout(heads, held_clips, features, text),
        "zero_shot": {"held_out": zero_shot(model, tokenizer, held_clips, features)},
    }


def run_probe(args: argparse.Namespace) -> dict:
    """Linear probe (and zero-shot) on demo-seed clips with the saved backbone, plus the same
    probe on a randomly initialised backbone of the same shape for comparison."""
    root = args.probe_data or generate(args.work, args.probe_clips, 0, BACKBONE.image_size)
    clips = load_synth(root, BACKBONE.image_size, args.fold)
    model = CLIPModel.from_pretrained(args.out).eval()
    tokenizer = CLIPTokenizer.from_pretrained(args.out)
    check_tokenizer(tokenizer, model.config.text_config.vocab_size)
    features = frame_embeddings(model, clips.frames)
    untrained = build_model(tokenizer, args.seed)
    random_init = frame_embeddings(untrained, clips.frames)
    seed = json.loads((root / "meta.json").read_text(encoding="utf-8"))["seed"]
    result = {
        "data": f"SynthDFER seed {seed}, {len(clips.ids)} clips, test fold {args.fold}",
        **{
            f"pretrained_{name}": linear_probe(clips, values)
            for name, values in probe_features(features).items()
        },
        **{
            f"random_init_{name}": linear_probe(clips, values)
            for name, values in probe_features(random_init).items()
        },
        "pretrained_text": linear_probe(clips, description_features(model, tokenizer, clips)),
        "random_init_text": linear_probe(clips, description_features(untrained, tokenizer, clips)),
        "pretrained_template_text": linear_probe(
            clips, description_features(model, tokenizer, clips, template=True)
        ),
        "random_init_template_text": linear_probe(
            clips, description_features(untrained, tokenizer, clips, template=True)
        ),
        "zero_shot_all_clips": zero_shot(model, tokenizer, clips, features),
    }
    metadata = json.loads((args.out / "metadata.json").read_text(encoding="utf-8"))
    metadata["probe"] = result
    write_json(args.out / "metadata.json", metadata)
    write_text(args.out / "README.md", readme(metadata))
    print(json.dumps(result, indent=2))
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="backbone directory")
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "runs" / "demo_backbone",
        help="where generated SynthDFER data is cached",
    )
    parser.add_argument("--pretrain-data", type=Path, help="existing SynthDFER to pre-train on")
    parser.add_argument("--probe-data", type=Path, help="existing demo-seed SynthDFER to probe")
    parser.add_argument("--data-seed", type=int, default=1234, help="pre-training data seed")
    parser.add_argument("--clips", type=int, default=3000, help="pre-training clips to generate")
    parser.add_argument("--probe-clips", type=int, default=700)
    parser.add_argument("--fold", type=int, default=1, help="probe test fold")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames-per-sample", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--prompt-fraction",
        type=float,
        default=0.2,
        help="share of samples paired with a class prompt, not a description",
    )
    parser.add_argument(
        "--render-fraction",
        type=float,
        default=0.3,
        help="share of samples shown as parsing or landmark renderings instead of frames",
    )
    parser.add_argument(
        "--parsing-weight", type=float, default=1.0, help="patch-token parsing loss weight"
    )
    parser.add_argument(
        "--landmark-weight", type=float, default=50.0, help="landmark regression loss weight"
    )
    parser.add_argument(
        "--movement-weight", type=float, default=10.0, help="action-unit regression weight"
    )
    parser.add_argument(
        "--text-weight", type=float, default=10.0, help="description -> movement weight"
    )
    parser.add_argument(
        "--expression-weight",
        type=float,
        default=1.0,
        help="expression-class loss weight (read out from the first-to-later frame change)",
    )
    parser.add_argument(
        "--frame-prompt-weight",
        type=float,
        default=1.0,
        help="loss weight of each later frame against the class prompts",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="continue from this backbone (and its tokenizer) instead of random weights",
    )
    parser.add_argument(
        "--pretrain-faces",
        type=Path,
        help="`prepare faces` cache of --pretrain-data: landmarks, parsing and template text "
        "measured by the pipeline (else the generator's ground truth)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe", action="store_true", help="run the linear probe afterwards")
    parser.add_argument("--probe-only", action="store_true", help="probe the existing --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if not args.probe_only:
            run_pretraining(args)
        if args.probe or args.probe_only:
            run_probe(args)
    except FineCLIPERError as exc:
        print(f"pretrain_demo_backbone: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
