"""The describe job: one fine-grained description per clip and prompt, as resumable JSONL.

Planning: every clip of a dataset index gets the prompt its use needs (prompts.py): under the
default label policy a clip that is a training clip in some split gets the labelled Fig. 3
prompt, a clip that is evaluated in some split the unlabelled one, so a 5-fold dataset yields
both for each clip. Evaluated clips include the validation split that training carves from
each training split (``validation_carve``, seeded like ``train``), so a fixed-split dataset's
validation clips have label-free text too. A backend that takes no prompt (template) gets one
item per clip.

Running: 8 uniformly sampled frames per clip (TSN segment centres), loaded on a thread pool one
batch ahead of generation; batches go to the backend; each result is one JSON line appended and
flushed as soon as its batch ends. A line records clip id, split role, label, prompt id and hash,
whether the label was shown, backend, model id and revision, frame indices, generation settings
and the raw text, or the error that stopped that clip (unreadable video, server timeout, no
landmarks): the job goes on. Rerun into the same file, the job keeps the finished lines, drops
error lines and a torn last line, and does the rest: the result equals an uninterrupted run's.
``--shard I/N`` keeps the items whose stable hash of the clip id is I modulo N; shard outputs
merge by concatenation.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.errors import ConfigError, FineCLIPERError, InputError
from finecliper.io import atomic_open, dumps_json
from finecliper.text.backends import Backend, ClipRequest, Reply
from finecliper.text.prompts import LabelPolicy, PromptTemplate, is_training_split, prompt_for

NUM_FRAMES = 8  # the paper feeds Video-LLaVA 8 uniformly sampled frames
# What loading one item gives: (request, frame indices, error) -- an error skips the backend.
Loaded = tuple[ClipRequest | None, list[int] | None, str | None]


@dataclass(frozen=True)
class DescribeItem:
    """One description to make: a clip, the role it is described for and its prompt."""

    record: ClipRecord
    split: str  # "train" (used as a training clip) or "test" (evaluated)
    label: str  # class name
    prompt: PromptTemplate | None  # None for backends that take no prompt
    prompt_id: str
    prompt_sha256: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.record.clip_id, self.prompt_id)


@dataclass
class DescribeSummary:
    items: int = 0  # in this shard
    already_done: int = 0
    described: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_errors: list[str] = field(default_factory=list)

    @property
    def clips_per_s(self) -> float:
        return (self.described + self.errors) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "already_done": self.already_done,
            "described": self.described,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "clips_per_s": round(self.clips_per_s, 3),
            "first_errors": self.first_errors,
        }


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from exc
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def in_shard(clip_id: str, shard: tuple[int, int]) -> bool:
    """Stable across runs and machines (CRC-32 of the id, not Python's salted hash)."""
    return zlib.crc32(clip_id.encode("utf-8")) % shard[1] == shard[0]


def validation_carve(index: DatasetIndex, *, seed: int, val_fraction: float) -> set[str]:
    """The clips ``train`` (train.seed, data.val_fraction) carves from any training split of
    ``index`` for validation: they are evaluated, so they need label-free descriptions."""
    from finecliper.data.run_data import carve_validation

    carved: set[str] = set()
    for split_name, split_records in index.splits.items():
        if is_training_split(split_name):
            usable = [r for r in split_records if r.num_frames]  # as read_run_data
            carved.update(r.clip_id for r in carve_validation(usable, val_fraction, seed)[1])
    return carved


def plan_items(
    index: DatasetIndex, policy: LabelPolicy, backend: Backend, *, evaluated: Set[str] = frozenset()
) -> list[DescribeItem]:
    """The descriptions a dataset needs, in the order clips first appear in its splits;
    ``evaluated`` clips (e.g. the validation carve) are evaluated whatever their split."""
    records: dict[str, ClipRecord] = {}
    roles: dict[str, set[bool]] = {}  # clip id -> {is a training clip somewhere, ...}
    for split_name, split_records in index.splits.items():
        for record in split_records:
            records.setdefault(record.clip_id, record)
            roles.setdefault(record.clip_id, set()).add(is_training_split(split_name))
    for clip_id in evaluated & roles.keys():
        roles[clip_id].add(False)
    items = []
    for clip_id, record in records.items():
        label = index.classes[record.label]
        if policy == "train" and backend.uses_prompt:
            uses = sorted(roles[clip_id], reverse=True)  # one description per use
        else:
            uses = [True in roles[clip_id]]  # one description serves every use
        for training in uses:
            prompt = prompt_for(policy, training) if backend.uses_prompt else None
            prompt_id = prompt.prompt_id if prompt else getattr(backend, "prompt_id", "none")
            prompt_hash = prompt.sha256 if prompt else getattr(backend, "prompt_sha256", None)
            split = "train" if training else "test"
            items.append(DescribeItem(record, split, label, prompt, prompt_id, prompt_hash))
    return items


def read_finished(out: Path) -> dict[tuple[str, str], str]:
    """Finished lines of a previous run by (clip_id, prompt_id); error and torn lines dropped."""
    finished: dict[tuple[str, str], str] = {}
    if not out.is_file():
        return finished
    # By bytes: a line torn by an interruption may end inside a multi-byte character.
    for number, raw in enumerate(out.read_bytes().splitlines(keepends=True), start=1):
        if not raw.endswith(b"\n"):
            break  # torn by an interruption mid-write
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{out}:{number}: not valid utf-8 text") from None
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("text") and not row.get("error"):
            finished[(str(row.get("clip_id")), str(row.get("prompt_id")))] = line
    return finished


def rewrite_finished(out: Path, finished: dict[tuple[str, str], str]) -> None:
    with atomic_open(out, "w", encoding="utf-8") as handle:
        handle.writelines(finished.values())


class DescribeJob:
    """Runs the planned items of one shard through a backend into a JSONL file."""

    def __init__(
        self,
        backend: Backend,
        out: Path,
        *,
        dataset: str,
        batch_size: int = 8,
        num_frames: int = NUM_FRAMES,
        loader_workers: int = 4,
        read_frames: Callable[[Path, Sequence[int]], Any] | None = None,
        count_frames: Callable[[Path], int] | None = None,
    ):
        if batch_size < 1 or num_frames < 1:
            raise ConfigError("--batch-size and the number of frames must be at least 1")
        from finecliper.data import video

        self.backend = backend
        self.out = Path(out)
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.loader_workers = max(1, loader_workers)
        self.read_frames = read_frames or video.read_frames
        self.count_frames = count_frames or video.count_frames

    def run(self, items: Sequence[DescribeItem], progress: bool = True) -> DescribeSummary:
        summary = DescribeSummary(items=len(items))
        finished = read_finished(self.out)
        self._check_same_source(finished.values(), items)
        rewrite_finished(self.out, finished)
        todo = [item for item in items if item.key not in finished]
        summary.already_done = len(items) - len(todo)
        start = time.perf_counter()
        bar = tqdm(total=len(todo), desc="describe", unit="clip", disable=not progress)
        with open(self.out, "a", encoding="utf-8") as sink:
            for batch, loaded in self._prefetched(todo):
                replies = self._describe_batch(batch, loaded)
                self._write(sink, batch, loaded, replies, summary)
                bar.update(len(batch))
        bar.close()
        summary.seconds = time.perf_counter() - start
        return summary

    def _check_same_source(self, lines: Iterable[str], items: Sequence[DescribeItem]) -> None:
        """Refuse to resume into a file made by another model or another prompt wording."""
        hashes = {item.prompt_id: item.prompt_sha256 for item in items}
        for line in lines:
            row = json.loads(line)
            source = (row.get("backend"), row.get("model"))
            if source != (self.backend.name, self.backend.model_id):
                raise ConfigError(
                    f"{self.out} holds descriptions by {source[0]} {source[1]}, not "
                    f"{self.backend.name} {self.backend.model_id}: choose another --out"
                )
            expected = hashes.get(row.get("prompt_id"), row.get("prompt_sha256"))
            if row.get("prompt_sha256") != expected:
                raise ConfigError(
                    f"{self.out}: prompt {row.get('prompt_id')!r} of clip {row.get('clip_id')!r} "
                    "has other wording than this run's: choose another --out"
                )

    def _prefetched(
        self, todo: Sequence[DescribeItem]
    ) -> Iterator[tuple[list[DescribeItem], list[Loaded]]]:
        """Batches with their loaded inputs; the next batch loads while this one generates."""
        batches = [
            list(todo[i : i + self.batch_size]) for i in range(0, len(todo), self.batch_size)
        ]
        with ThreadPoolExecutor(max_workers=self.loader_workers) as pool:
            pending: list[Future] | None = None
            for i, batch in enumerate(batches):
                current = pending or [pool.submit(self._load, item) for item in batch]
                if i + 1 < len(batches):
                    pending = [pool.submit(self._load, item) for item in batches[i + 1]]
                yield batch, [future.result() for future in current]

    def _load(self, item: DescribeItem) -> Loaded:
        """(request, frame indices, error) for one item; reading errors are the clip's error."""
        from finecliper.data.sampling import segment_indices

        prompt = item.prompt.render(item.label) if item.prompt else ""
        if not self.backend.needs_frames:
            return ClipRequest(item.record.clip_id, prompt), None, None
        try:
            total = item.record.num_frames or self.count_frames(item.record.path)
            indices = segment_indices(total, self.num_frames, train=False)
            frames = self.read_frames(item.record.path, indices)
        except (FineCLIPERError, OSError, ValueError) as exc:
            return None, None, str(exc)
        return ClipRequest(item.record.clip_id, prompt, frames), indices, None

    def _describe_batch(self, batch: list[DescribeItem], loaded: list[Loaded]) -> list[Reply]:
        requests = [request for request, _, error in loaded if error is None]
        replies = iter(self._safe_describe(requests)) if requests else iter(())
        return [Reply(None, error) if error else next(replies) for _, _, error in loaded]

    def _safe_describe(self, requests: list[ClipRequest]) -> list[Reply]:
        """A batch that fails as a whole (e.g. out of memory) is retried clip by clip."""
        try:
            return self.backend.describe(requests)
        except Exception as batch_exc:  # one bad batch must not end the job
            if len(requests) == 1:
                return [Reply(None, f"{type(batch_exc).__name__}: {batch_exc}")]
            return [reply for request in requests for reply in self._safe_describe([request])]

    def _write(
        self,
        sink: IO[str],
        batch: list[DescribeItem],
        loaded: list[Loaded],
        replies: list[Reply],
        summary: DescribeSummary,
    ) -> None:
        settings = self.backend.settings()
        for item, (_, indices, _), reply in zip(batch, loaded, replies, strict=True):
            row = self._row(item, reply.frame_indices or indices, settings, reply)
            sink.write(dumps_json(row, ensure_ascii=False) + "\n")
            if reply.error:
                summary.errors += 1
                if len(summary.first_errors) < 5:
                    summary.first_errors.append(f"{item.record.clip_id}: {reply.error}")
            else:
                summary.described += 1
        sink.flush()
        os.fsync(sink.fileno())  # a finished batch survives a crash of the machine

    def _row(
        self,
        item: DescribeItem,
        indices: list[int] | None,
        settings: dict[str, Any],
        reply: Reply,
    ) -> dict[str, Any]:
        return {
            "clip_id": item.record.clip_id,
            "dataset": self.dataset,
            "split": item.split,
            "label": item.label,
            "prompt_id": item.prompt_id,
            "prompt_sha256": item.prompt_sha256,
            "label_shown": bool(item.prompt and item.prompt.shows_label),
            "backend": self.backend.name,
            "model": self.backend.model_id,
            "revision": self.backend.revision,
            "frame_indices": indices,
            "generation": settings,
            "text": reply.text,
            "error": reply.error,
        }
