"""``Predictor``: a trained checkpoint applied to any video, with a timeline over sliding windows.

    from finecliper import Predictor
    predictor = Predictor.from_pretrained()           # the bundled demo model
    # or Predictor.from_pretrained("user/finecliper-dfew-full"), a folder, a .safetensors file
    result = predictor.predict("interview.mp4")       # or (T, H, W, 3) uint8 frames, fps=...
    print(result.top, result.probabilities, result.timeline[0].probabilities)

The input path mirrors training and ``finecliper eval`` exactly: the face stage of ``prepare
faces`` (serve/faces.py) gives face crops, 68 landmarks and parsing maps per frame; each window
(serve/windows.py) is sampled like an evaluation clip (TSN segment centres), goes through
``ClipTransform(train=False)`` (centre square + resize) with its parsing maps and landmarks, is
collated with ``collate_clips`` and turned into model inputs by ``to_model_inputs`` (renderings,
CLIP normalisation, tokenized description, present mask). A window where no frame shows a face
has its parsing and landmark modalities missing (dropped from the adaptive weighting, never
zero-filled); its description is missing too, since the template backend reads landmarks.

Whole-video probabilities are the mean of the window probabilities [ours]: every part of a long
video counts equally, and a video no longer than one window is a single window, which is exactly
the evaluation pass over a clip. The modality weights are averaged the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from finecliper.assets_paths import assets_dir
from finecliper.closing import Closing
from finecliper.data.dataset import collate_clips
from finecliper.data.transforms import ClipSample, ClipTransform
from finecliper.data.video import frames_to_tensor
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.analysis import FacesSettings, FaceTools, Tracking
from finecliper.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from finecliper.runtime.device import autocast, resolve_device
from finecliper.runtime.hub import load_model
from finecliper.runtime.inputs import to_model_inputs
from finecliper.serve.faces import FrameFace, analyse_frames, nearest_found, track_faces
from finecliper.serve.source import VideoSource, open_frames
from finecliper.serve.windows import Span, WindowRange, parse_span, window_ranges

# The bundled model: a model folder (runtime/hub.py layout) in the package's assets; web.py
# compares a predictor's model name with it to flag the demo model.
DEMO_CHECKPOINT = "demo_model"
TEXT_MODES = ("template", "none")
CROP_MODES = ("auto", "always", "never")


def demo_model_path() -> Path:
    """The model folder bundled with the package, trained on SynthDFER with the demo backbone."""
    path = assets_dir() / DEMO_CHECKPOINT
    if not path.is_dir():
        raise FineCLIPERError(
            f"the bundled demo model is missing ({path}); pass a model of `finecliper train` "
            "with --model or --checkpoint, or reinstall finecliper"
        )
    return path


@dataclass(frozen=True)
class Window:
    """One sliding window: frames ``[start_frame, end_frame)``, its class probabilities and
    modality weights; ``face_found`` False means parsing and landmarks were missing for it."""

    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    probabilities: dict[str, float]
    weights: dict[str, float]
    face_found: bool
    description: str | None

    @property
    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "top": self.top,
            "probabilities": _rounded(self.probabilities),
            "weights": _rounded(self.weights),
            "face_found": self.face_found,
            "description": self.description,
        }


@dataclass
class FrameOverlays:
    """What the annotated video draws: the source again and every frame's face data."""

    source: VideoSource
    faces: list[FrameFace]
    frame_size: tuple[int, int]  # (height, width) of the model frames the parsing maps cover
    crop_size: int


@dataclass
class PredictionResult:
    """Predictions for one video. ``face_boxes``: per frame, the main face's detected box
    ``[x0, y0, x1, y1]`` in source pixels, or None where it was not detected."""

    video: str
    duration_s: float
    fps: float
    num_frames: int
    classes: tuple[str, ...]
    probabilities: dict[str, float]
    timeline: list[Window]
    modality_weights: dict[str, float]
    description: str | None
    face_boxes: list[list[float] | None]
    settings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    overlays: FrameOverlays | None = field(default=None, repr=False, compare=False)

    @property
    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def face_found(self) -> bool:
        return any(window.face_found for window in self.timeline)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``predict --json`` and returned by the web server."""
        return {
            "video": self.video,
            "top": self.top,
            "top_probability": round(self.probabilities[self.top], 6),
            "probabilities": _rounded(self.probabilities),
            "modality_weights": _rounded(self.modality_weights),
            "description": self.description,
            "face_found": self.face_found,
            "duration_s": round(self.duration_s, 4),
            "fps": round(self.fps, 4),
            "num_frames": self.num_frames,
            "classes": list(self.classes),
            "timeline": [window.to_dict() for window in self.timeline],
            "face_boxes": self.face_boxes,
            "settings": self.settings,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class BatchItem:
    """One video of :meth:`Predictor.predict_many`: its result, or why it failed."""

    video: str
    result: PredictionResult | None
    error: str | None = None


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {name: round(float(value), 6) for name, value in values.items()}


@dataclass
class _WindowOutput:
    probabilities: np.ndarray  # (C,)
    weights: np.ndarray  # (M,) over the model's modalities
    face_found: bool
    description: str | None


class Predictor(Closing):
    """A loaded checkpoint plus the face tools; ``predict`` is safe to call from threads (one
    video at a time)."""

    def __init__(
        self,
        loaded: LoadedCheckpoint,
        *,
        device: torch.device,
        checkpoint: str,
        text: str = "template",
        crop: str = "auto",
        window: str | int | Span = 16,
        stride: str | int | Span = 8,
        batch_size: int = 8,
        faces: FacesSettings | None = None,
        progress: bool = False,
    ) -> None:
        if text not in TEXT_MODES:
            raise ConfigError(f"text backend {text!r}: choose from {', '.join(TEXT_MODES)}")
        if crop not in CROP_MODES:
            raise ConfigError(f"crop mode {crop!r}: choose from {', '.join(CROP_MODES)}")
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size}: expected at least 1")
        self.model = loaded.model
        self.config = loaded.config
        self.classes = loaded.classes
        self.device = device
        self.checkpoint = checkpoint
        self.text = text
        self.crop = crop
        self.window = parse_span(window)
        self.stride = parse_span(stride)
        self.batch_size = batch_size
        self.faces = faces or FacesSettings()
        self.progress = progress
        self.transform = ClipTransform(self.config.data.image_size, train=False)
        self._tools: FaceTools | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str | torch.device = "auto", **options: Any
    ) -> Predictor:
        """Load the checkpoint file ``path`` (default: the bundled demo model) onto ``device``."""
        if path is None:
            return cls.from_pretrained(None, device, **options)
        resolved = resolve_device(device)
        return cls(
            load_checkpoint(path, resolved), device=resolved, checkpoint=str(path), **options
        )

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        device: str | torch.device = "auto",
        **options: Any,
    ) -> Predictor:
        """Load a model folder of ``finecliper export``, a Hugging Face Hub id of one, or a
        checkpoint file (default: the bundled demo model) onto ``device``."""
        resolved = resolve_device(device)
        loaded, source = load_model(model if model is not None else demo_model_path(), resolved)
        return cls(loaded, device=resolved, checkpoint=source.name, **options)

    # ---- public API ----------------------------------------------------------------------

    def predict(
        self, video: str | Path | np.ndarray, *, fps: float | None = None
    ) -> PredictionResult:
        """Predict a video file, a frame folder, or (T, H, W, 3) uint8 RGB frames at ``fps``.

        With ``crop="auto"`` video files and arrays are cropped around the main face, frame
        folders (already face crops, like DFEW's) are used as they are.
        """
        with self._lock:
            source = open_frames(video, fps)
            cropping = self.crop == "always" or (self.crop == "auto" and not source.is_folder)
            tools = self._face_tools()
            tracking = track_faces(source, tools, self.faces, cropping, self.progress)
            ranges = window_ranges(
                source.count,
                self.window.frames(source.fps),
                self.stride.frames(source.fps),
                self.config.data.num_frames,
            )
            faces, outputs, frame_size = self._run_windows(source, tracking, ranges)
            return self._result(source, faces, ranges, outputs, frame_size, cropping)

    def predict_many(
        self, videos: Iterable[str | Path], *, fps: float | None = None
    ) -> Iterator[BatchItem]:
        """Each video's result in order; a video that cannot be read is reported, not raised."""
        for video in videos:
            try:
                yield BatchItem(str(video), self.predict(video, fps=fps))
            except FineCLIPERError as exc:
                yield BatchItem(str(video), None, str(exc))

    def close(self) -> None:
        if self._tools is not None:
            self._tools.close()
            self._tools = None

    # ---- the work ------------------------------------------------------------------------

    def _face_tools(self) -> FaceTools:
        if self._tools is None:  # MediaPipe graphs start in about a second: once per predictor
            self._tools = FaceTools(self.faces)
        return self._tools

    def _run_windows(
        self, source: VideoSource, tracking: Tracking, ranges: list[WindowRange]
    ) -> tuple[list[FrameFace], list[_WindowOutput], tuple[int, int]]:
        """Pass 2 over the frames; windows run in batches as soon as their frames are in."""
        needed = {index for window in ranges for index in window.sampled}
        faces: list[FrameFace] = []
        buffer: dict[int, np.ndarray] = {}  # model frames still needed by a window to come
        outputs: list[_WindowOutput] = []
        ready: list[WindowRange] = []
        upcoming = iter(ranges)
        following = next(upcoming, None)
        frame_size = (0, 0)
        frames = analyse_frames(source, tracking, self._face_tools(), self.faces)
        bar = tqdm(
            frames, total=source.count, desc="predict", unit="frame", disable=not self.progress
        )
        for index, (frame, face) in enumerate(bar):
            faces.append(face)
            frame_size = (frame.shape[0], frame.shape[1])
            if index in needed:
                buffer[index] = frame
            while following is not None and following.end - 1 <= index:
                ready.append(following)
                following = next(upcoming, None)
            if len(ready) >= self.batch_size or (following is None and ready):
                outputs += self._predict_windows(ready, buffer, faces, frame_size)
                ready = []
                keep_from = following.start if following is not None else source.count
                for old in [i for i in buffer if i < keep_from]:
                    del buffer[old]
        if len(outputs) != len(ranges):
            raise FineCLIPERError(f"{source.name}: fewer frames decoded than counted")
        return faces, outputs, frame_size

    @torch.no_grad()
    def _predict_windows(
        self,
        ranges: list[WindowRange],
        buffer: dict[int, np.ndarray],
        faces: list[FrameFace],
        frame_size: tuple[int, int],
    ) -> list[_WindowOutput]:
        items = [self._window_item(w, buffer, faces, frame_size) for w in ranges]
        batch = collate_clips(items)
        inputs = to_model_inputs(
            batch, self.device, modalities=self.model.modalities, tokenizer=self.model.tokenizer
        )
        with autocast(self.device, self.config.train.precision):
            outputs = self.model(inputs)
        probabilities = outputs.logits.float().softmax(dim=-1).cpu().numpy()
        weights = outputs.weights.float().cpu().numpy()
        return [
            _WindowOutput(
                probabilities[i], weights[i], bool(batch.has_middle[i]), item["description"]
            )
            for i, item in enumerate(items)
        ]

    def _window_item(
        self,
        window: WindowRange,
        buffer: dict[int, np.ndarray],
        faces: list[FrameFace],
        frame_size: tuple[int, int],
    ) -> dict[str, Any]:
        """One window as a ``ClipDataset`` sample: the same keys, transform and layout."""
        frames = frames_to_tensor(np.stack([buffer[i] for i in window.sampled]))
        window_faces = faces[window.start : window.end]
        sources = nearest_found(window_faces)
        parsing = landmarks = None
        if sources is not None:
            rows = [window.start + sources[i - window.start] for i in window.sampled]
            parsing = torch.from_numpy(np.stack([faces[r].parsing_map(frame_size) for r in rows]))
            landmarks = torch.from_numpy(np.stack([faces[r].landmarks for r in rows]))
        sample = self.transform(ClipSample(frames, parsing, landmarks))
        return {
            "index": window.start,
            "label": 0,  # unused: collate_clips wants one
            "frames": sample.frames,
            "parsing": sample.parsing,
            "landmarks": sample.landmarks,
            "description": self._describe(window_faces),
        }

    def _describe(self, faces: list[FrameFace]) -> str | None:
        """The template backend's description of the frames' landmarks (None: no face)."""
        found = [face for face in faces if face.found]
        if self.text == "none" or not found:
            return None
        from finecliper.text.backends.template import describe_landmarks

        points = np.stack([face.landmarks for face in found]).astype(np.float64)
        mesh = np.stack([face.mesh for face in found]).astype(np.float64)
        try:
            return describe_landmarks(points, mesh)
        except ValueError:  # degenerate landmarks (eyes on one point): no description
            return None

    def _result(
        self,
        source: VideoSource,
        faces: list[FrameFace],
        ranges: list[WindowRange],
        outputs: list[_WindowOutput],
        frame_size: tuple[int, int],
        cropping: bool,
    ) -> PredictionResult:
        modalities = self.model.modalities
        timeline = [
            Window(
                start_s=window.start / source.fps,
                end_s=window.end / source.fps,
                start_frame=window.start,
                end_frame=window.end,
                probabilities=dict(zip(self.classes, out.probabilities.tolist(), strict=True)),
                weights=dict(zip(modalities, out.weights.tolist(), strict=True)),
                face_found=out.face_found,
                description=out.description,
            )
            for window, out in zip(ranges, outputs, strict=True)
        ]
        mean_probabilities = np.mean([out.probabilities for out in outputs], axis=0)
        mean_weights = np.mean([out.weights for out in outputs], axis=0)
        return PredictionResult(
            video=source.name,
            duration_s=source.duration_s,
            fps=source.fps,
            num_frames=source.count,
            classes=self.classes,
            probabilities=dict(zip(self.classes, mean_probabilities.tolist(), strict=True)),
            timeline=timeline,
            modality_weights=dict(zip(modalities, mean_weights.tolist(), strict=True)),
            description=self._describe(faces),
            face_boxes=[_box_list(face) for face in faces],
            settings=self._settings(source, cropping),
            problems=list(source.problems),
            overlays=FrameOverlays(source, faces, frame_size, self.faces.crop_size),
        )

    def _settings(self, source: VideoSource, cropping: bool) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "variant": self.config.model.variant,
            "modalities": list(self.model.modalities),
            "window_frames": self.window.frames(source.fps),
            "stride_frames": self.stride.frames(source.fps),
            "num_frames": self.config.data.num_frames,
            "image_size": self.config.data.image_size,
            "face_crop": cropping,
            "text": self.text,
        }


def _box_list(face: FrameFace) -> list[float] | None:
    box = face.box
    return None if box is None else [round(v, 1) for v in (box.x0, box.y0, box.x1, box.y1)]
