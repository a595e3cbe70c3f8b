"""What happens in one SynthDFER clip: who is filmed, which expression unfolds, and the distractors.

Everything here is drawn from the clip's own random generator, so a clip depends only on
(seed, clip index) and the output is the same for any number of worker processes.

Expressions are driven by 15 action-unit-like parameters in [0, 1] (``AU_NAMES``). Each class
has a signature (``SIGNATURES``): the apex value of every parameter it moves. A clip ramps from
neutral to ``intensity x signature`` (smoothstep, onset at a random frame); subtle clips have a
low intensity, ambiguous clips blend in a weaker copy of a confusable class (``CONFUSABLE``).
Blinks, speech-like mouth motion, gaze shifts, brief brow flashes and head motion happen in
every class, so that "something moves" is never a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")

AU_NAMES: tuple[str, ...] = (
    "brow_inner_raise",
    "brow_outer_raise",
    "brow_lower",
    "brow_together",
    "eye_widen",
    "lid_tighten",
    "cheek_raise",
    "nose_wrinkle",
    "upper_lip_raise",
    "lip_corner_pull",
    "lip_corner_depress",
    "lip_stretch",
    "lip_press",
    "jaw_drop",
    "gaze_down",
)
AU = {name: i for i, name in enumerate(AU_NAMES)}

# Apex value of each parameter per class (absent = 0). Happy's jaw drop is drawn per clip.
SIGNATURES: dict[str, dict[str, float]] = {
    "Happy": {"lip_corner_pull": 1.0, "cheek_raise": 0.8},
    "Sad": {
        "brow_inner_raise": 0.9,
        "brow_together": 0.3,
        "lip_corner_depress": 0.9,
        "gaze_down": 0.7,
    },
    "Neutral": {},
    "Angry": {"brow_lower": 1.0, "brow_together": 0.8, "lid_tighten": 0.7, "lip_press": 0.8},
    "Surprise": {
        "brow_inner_raise": 0.9,
        "brow_outer_raise": 1.0,
        "eye_widen": 1.0,
        "jaw_drop": 0.9,
    },
    "Disgust": {
        "nose_wrinkle": 1.0,
        "upper_lip_raise": 0.9,
        "brow_lower": 0.45,
        "lid_tighten": 0.35,
        "lip_corner_depress": 0.2,
    },
    "Fear": {
        "brow_inner_raise": 1.0,
        "brow_outer_raise": 0.5,
        "brow_together": 0.6,
        "eye_widen": 0.9,
        "lip_stretch": 0.9,
        "jaw_drop": 0.25,
    },
}
HAPPY_JAW_RANGE = (0.0, 0.35)  # an open smile shows the teeth in some clips

# Which class an ambiguous clip blends in: the pairs that share movements.
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "Happy": ("Surprise", "Disgust"),
    "Sad": ("Fear", "Disgust", "Angry"),
    "Neutral": ("Sad", "Happy", "Angry", "Surprise"),
    "Angry": ("Disgust", "Sad"),
    "Surprise": ("Fear", "Happy"),
    "Disgust": ("Angry", "Sad"),
    "Fear": ("Surprise", "Sad"),
}

KINDS: tuple[str, ...] = ("normal", "subtle", "ambiguous")
KIND_PROBABILITIES = (0.66, 0.16, 0.18)
INTENSITY = {"normal": (0.65, 1.0), "subtle": (0.28, 0.48), "ambiguous": (0.55, 0.85)}
BLEND_RATIO = (0.45, 0.9)  # blended class strength relative to the clip's own intensity
NEUTRAL_BLEND = (0.18, 0.3)  # an ambiguous Neutral clip shows a faint trace of another class

POSE_NAMES = ("yaw", "pitch", "roll", "tx", "ty", "scale")

SKIN_TONES = (
    (252, 224, 200),
    (241, 198, 166),
    (226, 176, 136),
    (200, 142, 104),
    (165, 112, 78),
    (126, 84, 58),
    (92, 62, 44),
)
HAIR_COLOURS = {
    "black": (26, 23, 22),
    "dark_brown": (62, 42, 30),
    "brown": (112, 74, 46),
    "blonde": (206, 172, 112),
    "red": (152, 72, 38),
    "grey": (150, 148, 144),
    "white": (222, 220, 214),
}
HAIR_STYLES = ("none", "short", "long", "fringe", "afro", "bun")
HAIR_STYLE_PROBABILITIES = (0.1, 0.32, 0.25, 0.13, 0.1, 0.1)
IRIS_COLOURS = ((72, 46, 26), (42, 30, 22), (62, 104, 152), (72, 112, 74), (112, 86, 52))
BACKGROUNDS = ("solid", "gradient", "noise", "panels")


@dataclass(frozen=True)
class Identity:
    """The person and the scene: face geometry (face units, half face width ~1) and looks."""

    # head outline: superellipse half-axes and exponents below/above the centre line
    head_w: float
    jaw_h: float
    crown_h: float
    jaw_n: float
    crown_n: float
    chin_taper: float
    # eyes
    eye_x: float
    eye_y: float
    eye_w: float
    eye_up: float
    eye_lo: float
    eye_tilt: float
    iris_r: float
    # brows
    brow_gap: float
    brow_inner: float
    brow_outer: float
    brow_arch: float
    brow_thick: float
    # nose and mouth
    nose_tip_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    # looks
    skin: tuple[int, int, int]
    lip_colour: tuple[int, int, int]
    hair_style: str
    hair_colour: str
    hairline_y: float
    hair_volume: float
    brow_colour: tuple[int, int, int]
    iris_colour: tuple[int, int, int]
    glasses: bool
    glasses_colour: tuple[int, int, int]
    beard: str  # "none", "full", "goatee"
    moustache: bool
    hat: bool
    hat_colour: tuple[int, int, int]
    shirt_colour: tuple[int, int, int]
    # scene
    background: str
    background_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    light_angle: float
    light_strength: float
    brightness: float
    colour_cast: float
    jpeg_quality: int
    noise_sigma: float
    face_scale: float  # face half width as a fraction of the frame size


@dataclass
class ClipScript:
    """Per-frame parameters of one clip; ``au`` holds the expression movement only."""

    label: int
    kind: str
    intensity: float
    blend_class: int | None
    blend_weight: float
    onset: float
    apex: float
    au: np.ndarray  # (T, len(AU_NAMES))
    brow_flash: np.ndarray  # (T,) brief conversational brow raise, a distractor
    blink: np.ndarray  # (T,) eyelid closure 0..1
    speech: np.ndarray  # (T,) speech-like jaw opening
    speech_round: np.ndarray  # (T,) lip rounding of speech
    gaze: np.ndarray  # (T, 2) iris offset, x and y in -1..1
    pose: np.ndarray  # (T, 6) POSE_NAMES
    events: dict[str, Any] = field(default_factory=dict)


def _colour(rng: np.random.Generator, base: tuple[int, ...], spread: float) -> tuple[int, int, int]:
    jitter = rng.normal(0.0, spread, 3) + rng.normal(0.0, spread)
    r, g, b = np.clip(np.asarray(base, float) + jitter, 0, 255).round().astype(int)
    return int(r), int(g), int(b)


def _luma(colour: tuple[int, int, int]) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _contrasting(
    colour: tuple[int, int, int], against: tuple[int, int, int], minimum: float
) -> tuple[int, int, int]:
    """Darken (or, where that cannot work, lighten) ``colour`` until its luma differs from
    ``against`` by at least ``minimum``, so brows and lips always stand out from the skin."""
    rgb = np.asarray(colour, float)
    target = _luma(against)
    darken = _luma(colour) <= target and target - minimum > 8
    for _ in range(16):
        if abs(_luma(tuple(rgb)) - target) >= minimum:
            break
        rgb = rgb * 0.85 if darken else np.minimum(rgb * 1.15 + 12, 255)
    r, g, b = rgb.round().astype(int)
    return int(r), int(g), int(b)


def sample_identity(rng: np.random.Generator) -> Identity:
    head_w = rng.uniform(0.92, 1.06)
    eye_x = rng.uniform(0.38, 0.45) * head_w
    eye_w = rng.uniform(0.16, 0.2)
    skin = _colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6.0)
    lip_base = np.asarray(skin, float) * 0.72 + np.array([70.0, 10.0, 18.0])
    lip_colour = _contrasting(_colour(rng, tuple(lip_base), 6.0), skin, 22.0)
    hair_style = str(rng.choice(HAIR_STYLES, p=HAIR_STYLE_PROBABILITIES))
    hair_colour = str(rng.choice(list(HAIR_COLOURS)))
    brow_base = HAIR_COLOURS[hair_colour] if hair_style != "none" else (70, 50, 40)
    brow_colour = _contrasting(_colour(rng, brow_base, 8.0), skin, 55.0)
    bg_a = tuple(int(c) for c in rng.integers(20, 236, 3))
    bg_b = tuple(int(c) for c in rng.integers(20, 236, 3))
    beard_roll = rng.random()
    return Identity(
        head_w=head_w,
        jaw_h=rng.uniform(1.22, 1.4),
        crown_h=rng.uniform(1.25, 1.4),
        jaw_n=rng.uniform(2.0, 2.9),
        crown_n=rng.uniform(2.1, 2.5),
        chin_taper=rng.uniform(0.0, 0.22),
        eye_x=eye_x,
        eye_y=rng.uniform(-0.23, -0.17),
        eye_w=eye_w,
        eye_up=rng.uniform(0.095, 0.12),
        eye_lo=rng.uniform(0.06, 0.08),
        eye_tilt=rng.uniform(-0.015, 0.03),
        iris_r=rng.uniform(0.075, 0.088),
        brow_gap=rng.uniform(0.26, 0.32),
        brow_inner=rng.uniform(0.14, 0.19),
        brow_outer=min(eye_x + eye_w + rng.uniform(0.04, 0.09), 0.8 * head_w),
        brow_arch=rng.uniform(0.03, 0.075),
        brow_thick=rng.uniform(0.055, 0.1),
        nose_tip_y=rng.uniform(0.2, 0.3),
        nose_w=rng.uniform(0.13, 0.19),
        mouth_y=rng.uniform(0.66, 0.74),
        mouth_w=rng.uniform(0.3, 0.38),
        lip_up=rng.uniform(0.05, 0.075),
        lip_lo=rng.uniform(0.07, 0.1),
        skin=skin,
        lip_colour=lip_colour,
        hair_style=hair_style,
        hair_colour=hair_colour,
        hairline_y=rng.uniform(-1.08, -0.94),
        hair_volume=rng.uniform(0.1, 0.28),
        brow_colour=brow_colour,
        iris_colour=_colour(rng, IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], 6.0),
        glasses=bool(rng.random() < 0.2),
        glasses_colour=_colour(rng, (40, 36, 34) if rng.random() < 0.7 else (160, 150, 120), 8),
        beard="full" if beard_roll < 0.09 else "goatee" if beard_roll < 0.15 else "none",
        moustache=bool(rng.random() < 0.12),
        hat=bool(rng.random() < 0.08),
        hat_colour=tuple(int(c) for c in rng.integers(20, 220, 3)),
        shirt_colour=tuple(int(c) for c in rng.integers(15, 240, 3)),
        background=str(rng.choice(BACKGROUNDS)),
        background_colours=(bg_a, bg_b),
        light_angle=rng.uniform(0.0, 2 * np.pi),
        light_strength=rng.uniform(0.0, 0.35),
        brightness=rng.uniform(0.8, 1.12),
        colour_cast=rng.uniform(-0.06, 0.06),
        jpeg_quality=int(rng.integers(60, 91)),
        noise_sigma=rng.uniform(1.0, 4.0),
        face_scale=rng.uniform(0.29, 0.33),
    )


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _signature(rng: np.random.Generator, name: str) -> np.ndarray:
    """The class's apex parameters with per-clip jitter; sometimes a minor movement is absent."""
    sig = np.zeros(len(AU_NAMES))
    weights = SIGNATURES[name]
    for au_name, weight in weights.items():
        minor = weight < max(weights.values())
        if minor and rng.random() < 0.12:
            continue
        sig[AU[au_name]] = weight * rng.uniform(0.75, 1.15)
    if name == "Happy":
        sig[AU["jaw_drop"]] = rng.uniform(*HAPPY_JAW_RANGE)
    return np.clip(sig, 0.0, 1.0)


def _expression(
    rng: np.random.Generator, label: int, kind: str
) -> tuple[np.ndarray, float, int | None, float]:
    """Apex parameter vector, intensity and blended class of one clip."""
    name = CLASSES[label]
    blend_class, blend_weight = None, 0.0
    if name == "Neutral":
        intensity = 0.0
        apex = np.zeros(len(AU_NAMES))
        if kind == "ambiguous":
            blend_name = str(rng.choice(CONFUSABLE[name]))
            blend_class, blend_weight = CLASSES.index(blend_name), rng.uniform(*NEUTRAL_BLEND)
            apex = blend_weight * _signature(rng, blend_name)
        return apex, intensity, blend_class, blend_weight
    intensity = rng.uniform(*INTENSITY[kind])
    apex = intensity * _signature(rng, name)
    if kind == "ambiguous":
        blend_name = str(rng.choice(CONFUSABLE[name]))
        blend_class = CLASSES.index(blend_name)
        blend_weight = intensity * rng.uniform(*BLEND_RATIO)
        apex = np.maximum(apex, blend_weight * _signature(rng, blend_name))
    return apex, intensity, blend_class, blend_weight


def _smooth(values: np.ndarray) -> np.ndarray:
    padded = np.concatenate([values[:1], values, values[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def _timeline(
    rng: np.random.Generator, frames: int, apex: np.ndarray
) -> tuple[np.ndarray, float, float, bool]:
    """Neutral -> apex ramp per parameter (each with a small lag), plus tiny twitches."""
    last = frames - 1
    onset = rng.uniform(0.05, 0.45) * last
    rise = min(rng.uniform(0.2, 0.45) * last, 0.9 * last - onset)
    t = np.arange(frames, dtype=float)
    lags = rng.uniform(-0.6, 0.6, len(AU_NAMES))
    envelope = _smoothstep((t[:, None] - onset - lags[None, :]) / max(rise, 1e-6))
    relaxes = bool(rng.random() < 0.2)
    if relaxes:  # the movement partly relaxes over the last quarter of the clip
        tail = _smoothstep((t - 0.75 * last) / (0.25 * last + 1e-6))
        envelope *= 1.0 - rng.uniform(0.15, 0.4) * tail[:, None]
    twitch = 0.035 * np.abs(np.apply_along_axis(_smooth, 0, rng.normal(size=(frames, len(apex)))))
    au = np.clip(apex[None, :] * envelope + twitch, 0.0, 1.0)
    return au, onset, onset + rise, relaxes


def _pulses(frames: int, centres: list[int], profile: tuple[float, ...]) -> np.ndarray:
    out = np.zeros(frames)
    half = len(profile) // 2
    for centre in centres:
        for offset, value in enumerate(profile):
            index = centre + offset - half
            if 0 <= index < frames:
                out[index] = max(out[index], value)
    return out


def _blinks(rng: np.random.Generator, frames: int) -> list[int]:
    count = int(rng.choice([0, 1, 1, 2, 2, 3]))
    centres: list[int] = []
    for _ in range(count * 4):  # a few tries to keep blinks apart
        if len(centres) == count:
            break
        frame = int(rng.integers(0, frames))
        if all(abs(frame - other) >= 3 for other in centres):
            centres.append(frame)
    return sorted(centres)


def _speech(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() >= 0.4:
        return np.zeros(frames), np.zeros(frames)
    t = np.arange(frames, dtype=float)
    period = rng.uniform(2.5, 5.0)
    phase = rng.uniform(0, 2 * np.pi)
    start = rng.integers(0, max(1, frames // 2))
    active = (t >= start).astype(float)
    wave = 2 * np.pi * t / period + phase
    opening = rng.uniform(0.1, 0.28) * np.maximum(0.0, np.sin(wave)) ** 0.8 * active
    rounding = rng.uniform(0.0, 0.6) * np.maximum(0.0, np.cos(wave * 0.5)) * active
    return opening, rounding


def _gaze(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, bool]:
    gaze = np.tile(np.clip(rng.normal(0.0, 0.25, 2), -0.6, 0.6), (frames, 1))
    shifted = bool(rng.random() < 0.35)
    if shifted:
        at = int(rng.integers(1, frames))
        gaze[at:, 0] = np.clip(rng.normal(0.0, 0.5), -0.8, 0.8)
    return gaze, shifted


def _pose(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, list[str]]:
    """Base head pose and slow drift, plus an occasional nod, turn or tilt (a distractor)."""
    t = np.linspace(0.0, 1.0, frames)
    base = np.array(
        [
            rng.uniform(-0.25, 0.25),
            rng.uniform(-0.12, 0.12),
            rng.uniform(-0.12, 0.12),
            rng.uniform(-0.05, 0.05),
            rng.uniform(-0.04, 0.04),
            rng.uniform(0.9, 1.08),
        ]
    )
    drift = rng.uniform(-1, 1, 6) * np.array([0.06, 0.04, 0.04, 0.015, 0.015, 0.03])
    pose = base[None, :] + t[:, None] * drift[None, :]
    events: list[str] = []
    roll = rng.random()
    if roll < 0.12:
        pose[:, 1] += 0.1 * np.sin(2 * np.pi * t * rng.uniform(1.0, 2.0))
        events.append("nod")
    elif roll < 0.26:
        start = rng.uniform(0.1, 0.6)
        pose[:, 0] += rng.choice([-1, 1]) * rng.uniform(0.15, 0.3) * _smoothstep((t - start) / 0.3)
        events.append("turn")
    elif roll < 0.36:
        start = rng.uniform(0.1, 0.6)
        pose[:, 2] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.16) * _smoothstep((t - start) / 0.3)
        events.append("tilt")
    return pose, events


def sample_clip(rng: np.random.Generator, label: int, frames: int) -> ClipScript:
    kind = str(rng.choice(KINDS, p=KIND_PROBABILITIES))
    if CLASSES[label] == "Neutral" and kind == "subtle":
        kind = "normal"  # a subtle Neutral clip is just a Neutral clip
    apex_au, intensity, blend_class, blend_weight = _expression(rng, label, kind)
    au, onset, apex, relaxes = _timeline(rng, frames, apex_au)
    blink_frames = _blinks(rng, frames)
    speech, speech_round = _speech(rng, frames)
    gaze, gaze_shift = _gaze(rng, frames)
    flash = np.zeros(frames)
    if rng.random() < 0.15:
        flash = rng.uniform(0.25, 0.45) * _pulses(
            frames, [int(rng.integers(frames))], (0.5, 1, 0.5)
        )
    pose, head_events = _pose(rng, frames)
    pose[:, 1] += 0.08 * au[:, AU["gaze_down"]]  # looking down tips the head a little too
    return ClipScript(
        label=label,
        kind=kind,
        intensity=float(intensity),
        blend_class=blend_class,
        blend_weight=float(blend_weight),
        onset=float(onset),
        apex=float(apex),
        au=au,
        brow_flash=flash,
        blink=_pulses(frames, blink_frames, (0.45, 1.0, 0.45)),
        speech=speech,
        speech_round=speech_round,
        gaze=gaze,
        pose=pose,
        events={
            "blinks": len(blink_frames),
            "speech": bool(speech.max() > 0),
            "gaze_shift": gaze_shift,
            "brow_flash": bool(flash.max() > 0),
            "head": head_events,
            "relaxes": relaxes,
        },
    )
