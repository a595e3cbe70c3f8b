"""Face-parsing label maps (class ids of face/schema.py PARSING_CLASSES) and a parser registry.

The default parser, ``mesh``, fills polygons of the MediaPipe face-mesh contours: face oval
(skin), nose, brows, eyes, upper and lower lip and the inner mouth, painted in that order so that
inner parts cover the skin. It needs no weights and costs about a millisecond per frame, but it
only sees the face interior: hair, ears and neck stay background. Learned parsers plug in through
:func:`register_parser` and are chosen by name with a weights file: ``bisenet`` (below) takes the
face-parsing.PyTorch BiSeNet checkpoints and adds hair; a FaceXFormer adapter would register the
same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.landmarks import MESH_POINTS
from finecliper.face.schema import PARSING_INDEX


class FaceParser(Protocol):
    """Turns one RGB frame (and its face mesh, when found) into an (H, W) uint8 label map."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Tool name, version and settings, recorded in the cache manifest."""
        ...

    def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray: ...


ParserFactory = Callable[[Path | None], FaceParser]
_PARSERS: dict[str, ParserFactory] = {}


def register_parser(name: str) -> Callable[[ParserFactory], ParserFactory]:
    """Decorator: make a parser factory ``factory(weights_path_or_None)`` available by name."""

    def add(factory: ParserFactory) -> ParserFactory:
        if name in _PARSERS:
            raise FineCLIPERError(f"face parser {name!r} is registered twice")
        _PARSERS[name] = factory
        return factory

    return add


def parser_names() -> tuple[str, ...]:
    return tuple(sorted(_PARSERS))


def make_parser(name: str, weights: str | Path | None = None) -> FaceParser:
    """The parser registered as ``name``; ``weights`` is its model file, if it needs one."""
    if name not in _PARSERS:
        raise ConfigError(f"unknown face parser {name!r} (known: {', '.join(parser_names())})")
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"face parser {name!r}: weights file {weights} does not exist")
    return _PARSERS[name](None if weights is None else Path(weights))


# Closed contours of the canonical mesh, ordered around each part (consecutive vertices are edges
# of MediaPipe's FACEMESH_* connection sets; tests check that). Sides are the subject's own.
FACE_OVAL = (
    *(10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377),
    *(152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
OUTER_LIPS_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIPS_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
INNER_LIPS_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIPS_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
# The nose has no closed contour in the mesh: its region is the convex hull of the vertices of
# MediaPipe's FACEMESH_NOSE (bridge midline, nostril wings and base).
NOSE_VERTICES = (
    *(168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45),
    *(220, 115, 48, 64),
)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the 2-D convex hull of (N, 2) points, counter-clockwise (monotone chain)."""
    pts = sorted({(float(x), float(y)) for x, y in points})
    if len(pts) < 3:
        return np.array(pts, dtype=np.float64)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return np.array(half(pts) + half(pts[::-1]), dtype=np.float64)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def mesh_regions(mesh: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(class name, polygon) pairs in painting order, polygons as (K, 2) pixel coordinates."""
    xy = mesh[:, :2].astype(np.float64)

    def ring(*parts: tuple[int, ...]) -> np.ndarray:
        return xy[[i for part in parts for i in part]]

    return [
        ("skin", ring(FACE_OVAL)),
        ("nose", convex_hull(xy[list(NOSE_VERTICES)])),
        ("right_brow", ring(RIGHT_BROW)),
        ("left_brow", ring(LEFT_BROW)),
        ("right_eye", ring(RIGHT_EYE)),
        ("left_eye", ring(LEFT_EYE)),
        ("upper_lip", ring(OUTER_LIPS_UPPER, INNER_LIPS_UPPER[::-1])),
        ("lower_lip", ring(OUTER_LIPS_LOWER, INNER_LIPS_LOWER[::-1])),
        ("inner_mouth", ring(INNER_LIPS_UPPER, INNER_LIPS_LOWER)),
    ]


class MeshPolygonParser:
    """Label map from filled mesh-contour polygons (face interior only; no hair)."""

    name = "mesh"

    def describe(self) -> dict[str, Any]:
        return {
            "tool": "finecliper.face.parsing.MeshPolygonParser",
            "version": "1",
            "settings": {"source": "mediapipe face mesh contours", "classes_missing": ["hair"]},
        }

    def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        if mesh.ndim != 2 or mesh.shape[0] < MESH_POINTS or mesh.shape[1] < 2:
            raise FineCLIPERError(f"mesh parser: face mesh of shape {mesh.shape} is not (468+, 2+)")
        height, width = image.shape[:2]
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for name, polygon in mesh_regions(mesh):
            if len(polygon) >= 3:
                draw.polygon([tuple(p) for p in polygon.tolist()], fill=PARSING_INDEX[name])
        return np.asarray(canvas, dtype=np.uint8).copy()


@register_parser("mesh")
def _make_mesh_parser(weights: Path | None) -> FaceParser:
    if weights is not None:
        raise ConfigError("face parser 'mesh' takes no weights file")
    return MeshPolygonParser()


# ---------------------------------------------------------------------------------------------
# BiSeNet: the face-parsing network most DFER code uses (ResNet-18 context path, 19
# CelebAMask-HQ classes). The module names follow the widely shared face-parsing.PyTorch
# checkpoints (``79999_iter.pth``), so such a file loads as it is. Unlike the mesh parser it
# also labels hair.

CELEBAMASK_CLASSES: tuple[str, ...] = (
    *("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear"),
    *("ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"),
)
# CelebAMask-HQ class -> ours; anything not listed (neck, clothes, hat, jewellery) is background.
# Brows and eyes take their side from the face mesh, so the checkpoint's own left/right naming
# does not matter. Glasses and ears are counted as skin: they cover or border the face.
_CELEBAMASK_TO_OURS = {
    "skin": "skin",
    "eye_g": "skin",
    "l_ear": "skin",
    "r_ear": "skin",
    "l_brow": "right_brow",
    "r_brow": "right_brow",
    "l_eye": "right_eye",
    "r_eye": "right_eye",
    "nose": "nose",
    "mouth": "inner_mouth",
    "u_lip": "upper_lip",
    "l_lip": "lower_lip",
    "hair": "hair",
}
MIDLINE_VERTEX = 168  # between the eyes: brows and eyes left of it are the subject's right
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def celebamask_to_ours(labels: np.ndarray, midline_x: float) -> np.ndarray:
    """(H, W) CelebAMask-HQ ids -> PARSING_CLASSES ids. Brow and eye pixels left of the face's
    midline (image x) are the subject's right ones, as for an unmirrored face."""
    table = np.zeros(256, dtype=np.uint8)
    for i, name in enumerate(CELEBAMASK_CLASSES):
        table[i] = PARSING_INDEX[_CELEBAMASK_TO_OURS.get(name, "background")]
    out = table[labels]  # both brows (eyes) as the right one so far
    subject_left = (np.arange(labels.shape[1]) >= midline_x)[None, :]
    for right, left in (("right_brow", "left_brow"), ("right_eye", "left_eye")):
        out[(out == PARSING_INDEX[right]) & subject_left] = PARSING_INDEX[left]
    return out


class _ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


class _ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for k, (cin, cout, stride) in enumerate(widths, start=1):
            blocks = nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout))
            self.add_module(f"layer{k}", blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class _AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))


class _ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = _ResNet18()
        self.arm16 = _AttentionRefinement(256, 128)
        self.arm32 = _AttentionRefinement(512, 128)
        self.conv_head32 = _ConvBNReLU(128, 128)
        self.conv_head16 = _ConvBNReLU(128, 128)
        self.conv_avg = _ConvBNReLU(512, 128, kernel=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        feat32 = self.arm32(feat32) + F.interpolate(context, feat32.shape[2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(feat32, feat16.shape[2:], mode="nearest"))
        feat16 = self.arm16(feat16) + up32
        return feat8, self.conv_head16(F.interpolate(feat16, feat8.shape[2:], mode="nearest"))


class _FeatureFusion(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.convblk = _ConvBNReLU(channels, channels, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(channels, channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(channels // 4, channels, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        pooled = F.adaptive_avg_pool2d(feat, 1)
        return feat + feat * torch.sigmoid(self.conv2(F.relu(self.conv1(pooled))))


class _Head(nn.Module):
    def __init__(self, cin: int, mid: int, classes: int) -> None:
        super().__init__()
        self.conv = _ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet for face parsing; the ResNet's 1/8 features serve as the spatial path."""

    def __init__(self, classes: int = len(CELEBAMASK_CLASSES)) -> None:
        super().__init__()
        self.cp = _ContextPath()
        self.ffm = _FeatureFusion(256)
        self.conv_out = _Head(256, 256, classes)
        # Auxiliary training heads: unused at inference, kept so checkpoints load strictly.
        self.conv_out16 = _Head(128, 64, classes)
        self.conv_out32 = _Head(128, 64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, classes, H, W) logits."""
        spatial, context = self.cp(x)
        logits = self.conv_out(self.ffm(spatial, context))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def load_bisenet(weights: Path) -> BiSeNet:
    """A BiSeNet with the weights of a face-parsing.PyTorch style checkpoint file."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"{weights}: cannot read BiSeNet weights ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{weights}: expected a state dict, found {type(state).__name__}")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    model = BiSeNet()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ConfigError(f"{weights}: not a 19-class face-parsing BiSeNet ({exc})") from exc
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ConfigError(
            f"{weights}: not a face-parsing BiSeNet checkpoint "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()


class BiSeNetParser:
    """Face parsing with a BiSeNet checkpoint: the frame is resized to ``input_size``."""

    name = "bisenet"

    def __init__(self, weights: Path, *, input_size: int = 512) -> None:
        self.weights = Path(weights)
        self.input_size = input_size
        self.model = load_bisenet(self.weights)
        self.sha256 = hashlib.sha256(self.weights.read_bytes()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "tool": "finecliper.face.parsing.BiSeNet (face-parsing.PyTorch layout)",
            "version": "1",
            "settings": {
                "weights": self.weights.name,
                "weights_sha256": self.sha256,
                "input_size": self.input_size,
                "classes": "CelebAMask-HQ 19 -> PARSING_CLASSES",
            },
        }

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        if mesh.ndim != 2 or mesh.shape[0] <= MIDLINE_VERTEX:
            raise FineCLIPERError(f"bisenet parser: face mesh of shape {mesh.shape} is too short")
        height, width = image.shape[:2]
        pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
        pixels = F.interpolate(pixels, (self.input_size,) * 2, mode="bilinear", antialias=True)
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        logits = self.model((pixels - mean) / std)
        logits = F.interpolate(logits, (height, width), mode="bilinear", align_corners=False)
        labels = logits[0].argmax(0).numpy().astype(np.uint8)
        return celebamask_to_ours(labels, midline_x=float(mesh[MIDLINE_VERTEX, 0]))


@register_parser("bisenet")
def _make_bisenet_parser(weights: Path | None) -> FaceParser:
    if weights is None:
        raise ConfigError("face parser 'bisenet' needs --parser-weights (a BiSeNet .pth file)")
    return BiSeNetParser(weights)
