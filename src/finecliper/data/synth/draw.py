"""Rasterising a frame: shapes -> material map at 2x (antialiased RGB) and parsing map at 1x.

Shapes are drawn once at twice the frame size into a map of material ids (``Paint``), which is
coloured from the clip's palette, textured, lit and box-filtered down to the frame size: that
gives antialiased edges for the cost of one PIL pass. The parsing map is drawn directly at the
frame size from the same shapes, so each parsing pixel is exact for its own pixel centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from finecliper.data.synth.scenario import HAIR_COLOURS, Identity
from finecliper.data.synth.shapes import Paint, Shape

TEXTURE_AMPLITUDE = {
    Paint.HAIR: 0.22,
    Paint.BEARD: 0.3,
    Paint.MOUSTACHE: 0.25,
    Paint.BROW: 0.12,
    Paint.SHIRT: 0.08,
    Paint.HAT: 0.1,
}
DEFAULT_TEXTURE = 0.025  # skin and everything else: a faint mottle


@dataclass(frozen=True)
class Canvas:
    """Per-clip appearance: palette, and at frame size the background, light, texture, noise."""

    size: int
    colours: list[int]  # PIL palette: R, G, B per material
    extras: list[int]  # PIL palette: 255 for background, texture amplitude / MAX x 255, 0
    background: np.ndarray  # (S, S, 3) float32
    shade: np.ndarray  # (S, S, 1) light falloff x brightness
    texture: np.ndarray  # (S, S, 1) in about -1..1
    gain: np.ndarray  # (3,) colour cast
    noise: np.ndarray  # (S + NOISE_MARGIN, S + NOISE_MARGIN, 3) sensor noise, cropped per frame


NOISE_MARGIN = 16
MAX_TEXTURE = 0.3


def _scaled(colour: tuple[int, int, int], factor: float) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) * factor, 0, 255)


def _palette(ident: Identity) -> np.ndarray:
    skin = np.asarray(ident.skin, np.float32)
    hair = np.asarray(HAIR_COLOURS[ident.hair_colour], np.float32)
    facial_hair = hair * 0.8 if ident.hair_style != "none" else np.array([60, 44, 34], np.float32)
    colours = {
        Paint.BACKGROUND: np.zeros(3, np.float32),
        Paint.SHIRT: np.asarray(ident.shirt_colour, np.float32),
        Paint.NECK: skin * 0.86,
        Paint.HAIR: hair,
        Paint.EAR: skin * 0.94,
        Paint.SKIN: skin,
        Paint.CHEEK: skin * 0.92 + np.array([255, 110, 110], np.float32) * 0.08,
        Paint.CREASE: skin * 0.72,
        Paint.BEARD: facial_hair,
        Paint.EYE_WHITE: np.array([228, 225, 218], np.float32),
        Paint.IRIS: np.asarray(ident.iris_colour, np.float32),
        Paint.PUPIL: np.array([14, 12, 12], np.float32),
        Paint.LASH: np.array([32, 25, 22], np.float32),
        Paint.BROW: np.asarray(ident.brow_colour, np.float32),
        Paint.NOSE: skin * 0.93,
        Paint.NOSE_TIP: _scaled(ident.skin, 1.05),
        Paint.NOSTRIL: skin * 0.42,
        Paint.MOUSTACHE: facial_hair,
        Paint.INNER_MOUTH: np.array([72, 24, 30], np.float32),
        Paint.TEETH: np.array([236, 230, 214], np.float32),
        Paint.UPPER_LIP: _scaled(ident.lip_colour, 0.94),
        Paint.LOWER_LIP: np.asarray(ident.lip_colour, np.float32),
        Paint.HAT: np.asarray(ident.hat_colour, np.float32),
        Paint.GLASSES: np.asarray(ident.glasses_colour, np.float32),
    }
    palette = np.zeros((Paint.COUNT, 3), np.float32)
    for paint, colour in colours.items():
        palette[paint] = colour
    return palette


def _smooth_noise(rng: np.random.Generator, grid: tuple[int, int], size: int) -> np.ndarray:
    """Low-frequency noise: a small random grid upsampled bicubically to size x size."""
    small = Image.fromarray(rng.normal(size=grid).astype(np.float32), mode="F")
    return np.asarray(small.resize((size, size), Image.Resampling.BICUBIC), np.float32)


def _background(rng: np.random.Generator, ident: Identity, size: int) -> np.ndarray:
    a, b = (np.asarray(c, np.float32) for c in ident.background_colours)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if ident.background == "solid":
        weight = np.zeros((size, size), np.float32)
    elif ident.background == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * xs + np.sin(angle) * ys
        weight = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    elif ident.background == "noise":
        weight = np.clip(0.5 + 0.3 * _smooth_noise(rng, (5, 5), size), 0, 1)
    else:  # "panels": a wall with vertical panels or a door frame
        edges = np.sort(rng.uniform(0, 1, 3))
        weight = (np.searchsorted(edges, xs[0]) % 2).astype(np.float32)[None, :].repeat(size, 0)
        weight = weight * 0.8 + 0.1 * ys
    image = a[None, None, :] * (1 - weight[..., None]) + b[None, None, :] * weight[..., None]
    return image + 4.0 * rng.normal(size=(size, size, 1)).astype(np.float32)


def _half(image: np.ndarray) -> np.ndarray:
    """2x2 box filter of an array whose first two axes have even length."""
    return 0.25 * (image[0::2, 0::2] + image[0::2, 1::2] + image[1::2, 0::2] + image[1::2, 1::2])


def build_canvas(rng: np.random.Generator, ident: Identity, size: int) -> Canvas:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    light = 1.0 + ident.light_strength * (
        np.cos(ident.light_angle) * xs + np.sin(ident.light_angle) * ys
    )
    face_r = ident.face_scale * 1.3
    falloff = np.clip((xs**2 + (ys / 1.3) ** 2) / face_r**2 - 0.45, 0.0, 1.0)
    streaks = _smooth_noise(rng, (6, 40), size)
    texture = np.clip(0.6 * streaks + 0.4 * rng.normal(size=(size, size)), -2, 2) / 2
    amplitude = np.full(Paint.COUNT, DEFAULT_TEXTURE, np.float32)
    amplitude[Paint.BACKGROUND] = 0.0
    for paint, value in TEXTURE_AMPLITUDE.items():
        amplitude[paint] = value
    is_background = np.arange(Paint.COUNT) == Paint.BACKGROUND
    extras = np.stack([is_background, amplitude / MAX_TEXTURE, np.zeros(Paint.COUNT)], axis=1)
    cast = ident.colour_cast
    margin = size + NOISE_MARGIN
    return Canvas(
        size=size,
        colours=np.clip(_palette(ident), 0, 255).round().astype(int).ravel().tolist(),
        extras=np.clip(255 * extras, 0, 255).round().astype(int).ravel().tolist(),
        background=_half(_background(rng, ident, 2 * size)).astype(np.float32),
        shade=(ident.brightness * light * (1.0 - 0.18 * falloff))[..., None].astype(np.float32),
        texture=texture[..., None].astype(np.float32),
        gain=np.array([1 + cast, 1.0, 1 - cast], np.float32),
        noise=(ident.noise_sigma * rng.standard_normal((margin, margin, 3))).astype(np.float32),
    )


def rasterise(shapes: list[Shape], size: int) -> tuple[Image.Image, np.ndarray]:
    """Material ids at 2x size (an "L" image) and parsing class ids at 1x size (uint8)."""
    materials = Image.new("L", (2 * size, 2 * size), Paint.BACKGROUND)
    parsing = Image.new("L", (size, size), 0)
    draw_materials, draw_parsing = ImageDraw.Draw(materials), ImageDraw.Draw(parsing)
    for shape in shapes:
        # pixel centres are at integers at both scales: x_2x = 2 * x + 0.5
        doubled = shape.points * 2.0 + 0.5
        if shape.kind == "poly":
            draw_materials.polygon(doubled.ravel().tolist(), fill=shape.paint)
            if shape.parse is not None:
                draw_parsing.polygon(shape.points.ravel().tolist(), fill=shape.parse)
        elif shape.kind == "line":
            width = max(1, round(2 * shape.size))
            draw_materials.line(doubled.ravel().tolist(), fill=shape.paint, width=width)
        else:
            (cx, cy), r = doubled.ravel(), 2 * shape.size
            draw_materials.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shape.paint)
    return materials, np.asarray(parsing)


def compose(materials: Image.Image, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Colour, box-filter 2x2, background, texture, light, sensor noise -> (S, S, 3) uint8."""
    # Written for speed (~0.4 ms at 112 px): the palette lookups and the 2x2 box filter run
    # inside PIL; light and texture are smooth, so they are applied after the downsampling.
    coloured = materials.copy()
    coloured.putpalette(canvas.colours)
    small = np.asarray(coloured.convert("RGB").reduce(2), np.float32)
    flagged = materials.copy()
    flagged.putpalette(canvas.extras)
    extras = np.asarray(flagged.convert("RGB").reduce(2), np.float32)
    small += canvas.background * (extras[..., 0:1] / 255.0)
    texture = extras[..., 1:2] * (MAX_TEXTURE / 255.0)
    small *= canvas.shade * (1.0 + texture * canvas.texture)
    small *= canvas.gain
    dy, dx = rng.integers(0, NOISE_MARGIN, 2)
    small += canvas.noise[dy : dy + canvas.size, dx : dx + canvas.size]
    np.clip(small, 0.0, 255.0, out=small)
    return (small + 0.5).astype(np.uint8)
