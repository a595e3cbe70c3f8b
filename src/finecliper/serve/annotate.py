"""What ``predict --out`` and the web page show: an annotated video and a timeline plot.

The annotated video is the input re-read frame by frame with the main face's box (green), the
68 landmarks (yellow dots), the parsing map blended 50/50 in the class colours of
``face/schema.py`` (as the model's parsing input is rendered), and the top class of the window
centred nearest to the frame, written as H.264 (libx264, yuv420p, same frame count and rate as
the input), scaled so its long side is between 320 and 640 pixels. The timeline plot shows
the class probabilities and the adaptive modality weights of every window against time, with
windows that had no face shaded.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from finecliper.errors import FineCLIPERError
from finecliper.face.schema import LANDMARK_COLOUR, PARSING_CLASSES, PARSING_COLOURS
from finecliper.io import atomic_open, write_text
from finecliper.serve.faces import FrameFace, to_source_pixels
from finecliper.serve.predictor import FrameOverlays, PredictionResult, Window

ANNOTATED_VIDEO = "annotated.mp4"
TIMELINE_PLOT = "timeline.png"
RESULT_JSON = "result.json"
MAX_SIDE, MIN_SIDE = 640, 320
BOX_COLOUR = (0, 230, 118)
_COLOURS = np.array([PARSING_COLOURS[name] for name in PARSING_CLASSES], dtype=np.uint16)


def write_outputs(result: PredictionResult, folder: str | Path) -> dict[str, Path]:
    """The annotated video, the timeline plot and the result JSON, in ``folder``."""
    folder = Path(folder)
    paths = {
        "annotated_video": folder / ANNOTATED_VIDEO,
        "timeline_plot": folder / TIMELINE_PLOT,
        "result": folder / RESULT_JSON,
    }
    write_annotated_video(result, paths["annotated_video"])
    write_timeline_plot(result, paths["timeline_plot"])
    write_text(paths["result"], json.dumps(result.to_dict(), indent=2) + "\n")
    return paths


# ---- the annotated video -------------------------------------------------------------------


def output_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) with the long side within [MIN_SIDE, MAX_SIDE], both even (yuv420p)."""
    long_side = max(width, height)
    scale = min(MAX_SIDE / long_side, max(1.0, MIN_SIDE / long_side))
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


def window_per_frame(timeline: list[Window], count: int) -> list[int]:
    """For each frame, the covering window whose centre is nearest to it."""
    best = [0] * count
    distance = [float("inf")] * count
    for index, window in enumerate(timeline):
        centre = (window.start_frame + window.end_frame - 1) / 2
        for frame in range(window.start_frame, min(window.end_frame, count)):
            if abs(frame - centre) < distance[frame]:
                best[frame], distance[frame] = index, abs(frame - centre)
    return best


def write_annotated_video(result: PredictionResult, path: str | Path) -> int:
    """Write the annotated H.264 video; returns the number of frames written."""
    overlays = result.overlays
    if overlays is None:
        raise FineCLIPERError("this result carries no per-frame data to annotate")
    windows = window_per_frame(result.timeline, result.num_frames)
    font = None
    written = 0
    with atomic_open(path, "wb") as handle, av.open(handle, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(result.fps).limit_denominator(1000))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index, frame in enumerate(overlays.source.frames()):
            if index == 0:
                stream.width, stream.height = output_size(frame.shape[1], frame.shape[0])
                font = _font(stream.height)
            size = (stream.width, stream.height)
            window = result.timeline[windows[index]]
            image = annotate_frame(frame, overlays.faces[index], overlays, window, size, font)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            written += 1
        container.mux(stream.encode())
    return written


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, height // 20))


def annotate_frame(
    frame: np.ndarray,
    face: FrameFace,
    overlays: FrameOverlays,
    window: Window,
    size: tuple[int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont | None,
) -> np.ndarray:
    """One output frame (H, W, 3) uint8 of ``size`` (width, height)."""
    scale = size[0] / frame.shape[1]
    pixels = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
    if face.parsing is not None:
        pixels = _blend_parsing(pixels, face, overlays, scale)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    if face.box is not None:
        box = [v * scale for v in (face.box.x0, face.box.y0, face.box.x1, face.box.y1)]
        draw.rectangle(box, outline=BOX_COLOUR, width=max(2, size[1] // 160))
    if face.landmarks is not None:
        points = (to_source_pixels(face.landmarks, face.crop, overlays.crop_size) + 0.5) * scale
        radius = max(1.5, size[1] / 200)
        for x, y in points.tolist():
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=LANDMARK_COLOUR)
    label = f"{window.top} {window.probabilities[window.top]:.0%}"
    if not face.found:
        label += "  (no face)"
    _caption(draw, label, font)
    return np.asarray(image)


def _blend_parsing(
    pixels: np.ndarray, face: FrameFace, overlays: FrameOverlays, scale: float
) -> np.ndarray:
    """Class colours blended 50/50 over the face pixels, the map placed where its crop was cut."""
    labels = face.parsing_map(overlays.frame_size)
    if face.crop is None:
        x0 = y0 = 0
        width, height = pixels.shape[1], pixels.shape[0]
    else:
        x0, y0 = round(face.crop.x0 * scale), round(face.crop.y0 * scale)
        width = height = max(1, round(face.crop.side * scale))
    placed = np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))
    # The part of the (possibly out-of-frame) crop that lies inside the output frame.
    top, left = max(0, -y0), max(0, -x0)
    bottom = min(height, pixels.shape[0] - y0)
    right = min(width, pixels.shape[1] - x0)
    if bottom <= top or right <= left:
        return pixels
    region = placed[top:bottom, left:right]
    out = pixels.copy()
    target = out[y0 + top : y0 + bottom, x0 + left : x0 + right]
    face_pixels = (region > 0) & (region < len(PARSING_CLASSES))
    blended = (target.astype(np.uint16) + _COLOURS[region] + 1) // 2
    target[face_pixels] = blended[face_pixels].astype(np.uint8)
    return out


def _caption(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont | None
) -> None:
    margin = 6
    left, top, right, bottom = draw.textbbox((margin, margin), text, font=font)
    draw.rectangle([left - 4, top - 3, right + 4, bottom + 3], fill=(0, 0, 0))
    draw.text((margin, margin), text, fill=(255, 255, 255), font=font)


# ---- the timeline plot ---------------------------------------------------------------------


def write_timeline_plot(result: PredictionResult, path: str | Path) -> None:
    """Class probabilities (top) and modality weights (bottom) per window against time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top_axes, weight_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    centres, points = _plot_points(result.timeline)
    for window in result.timeline:
        if not window.face_found:
            for axes in (top_axes, weight_axes):
                axes.axvspan(window.start_s, window.end_s, color="0.9", zorder=0)
    for name in result.classes:
        values = [w.probabilities[name] for w in points]
        width = 2.5 if name == result.top else 1.2
        top_axes.plot(centres, values, marker="o", markersize=3, linewidth=width, label=name)
    top_axes.set_ylim(0, 1)
    top_axes.set_ylabel("probability")
    top_axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    name = Path(result.video).name
    top_axes.set_title(f"{name}: {result.top} ({result.probabilities[result.top]:.0%})")
    modalities = list(result.modality_weights)
    weights = [[w.weights[m] for w in points] for m in modalities]
    weight_axes.stackplot(centres, weights, labels=modalities, alpha=0.85)
    weight_axes.set_ylim(0, 1)
    weight_axes.set_xlim(0, max(result.duration_s, 1e-3))
    weight_axes.set_ylabel("modality weight")
    weight_axes.set_xlabel("time (s); grey: no face found")
    weight_axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")


def _plot_points(timeline: list[Window]) -> tuple[list[float], list[Window]]:
    """Window centres and windows; a lone window spans its length so that it shows as a band."""
    if len(timeline) == 1:
        return [timeline[0].start_s, timeline[0].end_s], [timeline[0], timeline[0]]
    return [(w.start_s + w.end_s) / 2 for w in timeline], list(timeline)
