"""Face-parsing maps from mesh contours, and the parser registry.

Reference points on ``skimage.data.astronaut()`` (512 x 512, pixel x, y) were marked by hand.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mediapipe")
skimage_data = pytest.importorskip("skimage.data")
connections = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")

from finecliper.errors import ConfigError, FineCLIPERError  # noqa: E402
from finecliper.face import parsing  # noqa: E402
from finecliper.face.landmarks import MeshLandmarker  # noqa: E402
from finecliper.face.schema import PARSING_CLASSES, PARSING_INDEX  # noqa: E402

HAND_MARKED = {
    "right_eye": [(203, 102), (198, 101)],  # subject's right eye = image left
    "left_eye": [(246, 103), (251, 104)],
    "nose": [(223, 127), (223, 118)],
    "skin": [(195, 125), (250, 125), (223, 165), (223, 95)],  # cheeks, chin, forehead
    "background": [(175, 80), (20, 20), (300, 300), (223, 220)],  # hair, wall, suit, neck
}
MOUTH_BOX = (198, 134, 250, 158)  # x0, y0, x1, y1 around the smiling lips


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def label_map(photo: np.ndarray) -> np.ndarray:
    with MeshLandmarker() as landmarker:
        mesh = landmarker(photo)
    assert mesh is not None
    return parsing.make_parser("mesh")(photo, mesh)


def edge_set(name: str) -> set[frozenset[int]]:
    return {frozenset(edge) for edge in getattr(connections, name)}


def chain_edges(chain: tuple[int, ...], closed: bool) -> list[frozenset[int]]:
    walk = [*chain, chain[0]] if closed else list(chain)
    return [frozenset(pair) for pair in itertools.pairwise(walk)]


@pytest.mark.parametrize(
    ("chain", "mediapipe_set", "closed"),
    [
        (parsing.FACE_OVAL, "FACEMESH_FACE_OVAL", True),
        (parsing.RIGHT_EYE, "FACEMESH_RIGHT_EYE", True),
        (parsing.LEFT_EYE, "FACEMESH_LEFT_EYE", True),
        (parsing.RIGHT_BROW[:5], "FACEMESH_RIGHT_EYEBROW", False),
        (parsing.RIGHT_BROW[5:], "FACEMESH_RIGHT_EYEBROW", False),
        (parsing.LEFT_BROW[:5], "FACEMESH_LEFT_EYEBROW", False),
        (parsing.LEFT_BROW[5:], "FACEMESH_LEFT_EYEBROW", False),
        (parsing.OUTER_LIPS_UPPER, "FACEMESH_LIPS", False),
        (parsing.OUTER_LIPS_LOWER, "FACEMESH_LIPS", False),
        (parsing.INNER_LIPS_UPPER, "FACEMESH_LIPS", False),
        (parsing.INNER_LIPS_LOWER, "FACEMESH_LIPS", False),
    ],
)
def test_contours_follow_mediapipe_connections(
    chain: tuple[int, ...], mediapipe_set: str, closed: bool
) -> None:
    missing = [set(e) for e in chain_edges(chain, closed) if e not in edge_set(mediapipe_set)]
    assert not missing, f"not edges of {mediapipe_set}: {missing}"


def test_nose_vertices_are_mediapipes_nose() -> None:
    assert set(parsing.NOSE_VERTICES) == {v for e in connections.FACEMESH_NOSE for v in e}


def test_parts_sit_where_they_belong_on_the_photo(label_map: np.ndarray) -> None:
    assert label_map.shape == (512, 512) and label_map.dtype == np.uint8
    for name, points in HAND_MARKED.items():
        for x, y in points:
            found = PARSING_CLASSES[label_map[y, x]]
            assert found == name, f"({x}, {y}) is {found}, expected {name}"


def test_skin_region_is_the_face(label_map: np.ndarray) -> None:
    ys, xs = np.nonzero(label_map == PARSING_INDEX["skin"])
    assert abs(xs.mean() - 224) < 10 and abs(ys.mean() - 120) < 15
    assert xs.min() > 170 and xs.max() < 280 and ys.min() > 55 and ys.max() < 185


def test_lips_and_mouth_inside_the_mouth_in_order(label_map: np.ndarray) -> None:
    x0, y0, x1, y1 = MOUTH_BOX
    centres = {}
    for name in ("upper_lip", "lower_lip", "inner_mouth"):
        ys, xs = np.nonzero(label_map == PARSING_INDEX[name])
        assert len(xs) > 30, f"{name}: only {len(xs)} pixels"
        assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1, name
        centres[name] = ys.mean()
    # The photo smiles with open lips: upper lip, then teeth (inner mouth), then lower lip.
    assert centres["upper_lip"] < centres["inner_mouth"] < centres["lower_lip"]


def test_every_class_but_hair_is_painted(label_map: np.ndarray) -> None:
    present = {PARSING_CLASSES[i] for i in np.unique(label_map)}
    assert present == set(PARSING_CLASSES) - {"hair"}


def test_convex_hull_drops_interior_points() -> None:
    square = [(0, 0), (4, 0), (4, 4), (0, 4)]
    points = np.array([*square, (2, 2), (1, 3), (2, 0)], dtype=float)
    hull = parsing.convex_hull(points)
    assert {tuple(p) for p in hull.tolist()} == {tuple(map(float, p)) for p in square}


def test_mesh_parser_rejects_a_short_mesh() -> None:
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(FineCLIPERError, match="face mesh of shape"):
        parsing.make_parser("mesh")(image, np.zeros((68, 2), dtype=np.float32))


def test_registry_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown face parser 'nonesuch' \(known: .*mesh"):
        parsing.make_parser("nonesuch")
    with pytest.raises(ConfigError, match="does not exist"):
        parsing.make_parser("mesh", tmp_path / "missing.pth")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="takes no weights"):
        parsing.make_parser("mesh", weights)


def test_a_registered_parser_is_made_with_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parsing, "_PARSERS", dict(parsing._PARSERS))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights")

    class ConstantParser:
        name = "constant"

        def __init__(self, path: Path | None) -> None:
            self.path = path

        def describe(self) -> dict[str, object]:
            return {"tool": "constant", "version": "0", "settings": {"weights": str(self.path)}}

        def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
            return np.full(image.shape[:2], PARSING_INDEX["skin"], dtype=np.uint8)

    parsing.register_parser("constant")(ConstantParser)
    made = parsing.make_parser("constant", weights)
    assert made.describe()["settings"] == {"weights": str(weights)}
    assert "constant" in parsing.parser_names()
    with pytest.raises(FineCLIPERError, match="registered twice"):
        parsing.register_parser("constant")(ConstantParser)


@pytest.fixture(scope="module")
def bisenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random BiSeNet weights saved as face-parsing.PyTorch does (a plain state dict)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bisenet") / "random_iter.pth"
    torch.save(parsing.BiSeNet().state_dict(), path)
    return path


def test_bisenet_has_the_checkpoint_layout() -> None:
    state = parsing.BiSeNet().state_dict()
    for key in (
        "cp.resnet.conv1.weight",
        "cp.resnet.layer2.0.downsample.0.weight",
        "cp.resnet.layer4.1.bn2.running_var",
        "cp.arm32.conv_atten.weight",
        "cp.conv_avg.conv.weight",
        "ffm.convblk.bn.weight",
        "ffm.conv2.weight",
        "conv_out.conv_out.weight",
        "conv_out16.conv.conv.weight",
    ):
        assert key in state, key
    assert state["conv_out.conv_out.weight"].shape == (19, 256, 1, 1)
    # 13.3M parameters: the size of the published 53 MB checkpoints.
    assert sum(v.numel() for v in parsing.BiSeNet().parameters()) == 13_300_416


def test_bisenet_parser_runs_on_random_weights(bisenet_weights: Path) -> None:
    made = parsing.make_parser("bisenet", bisenet_weights)
    assert made.describe()["settings"]["weights"] == "random_iter.pth"
    assert len(made.describe()["settings"]["weights_sha256"]) == 64
    small = parsing.BiSeNetParser(bisenet_weights, input_size=64)
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    mesh = np.full((478, 3), 24.0, dtype=np.float32)
    labels = small(image, mesh)
    assert labels.shape == (40, 48) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(len(PARSING_CLASSES)))


def test_bisenet_output_is_mapped_to_our_classes_and_sides(
    bisenet_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed network output: hair on top, CelebAMask 'l_eye' on the bottom row everywhere."""
    parser = parsing.BiSeNetParser(bisenet_weights, input_size=32)

    def fixed_logits(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(1, 19, *x.shape[2:])
        half = x.shape[2] // 2
        logits[0, parsing.CELEBAMASK_CLASSES.index("hair"), :half] = 5
        logits[0, parsing.CELEBAMASK_CLASSES.index("l_eye"), half:] = 5
        return logits

    monkeypatch.setattr(parser, "model", fixed_logits)
    mesh = np.zeros((478, 3), dtype=np.float32)
    mesh[parsing.MIDLINE_VERTEX, 0] = 10  # the face midline at x = 10
    labels = parser(np.zeros((16, 40, 3), dtype=np.uint8), mesh)
    assert (labels[:6] == PARSING_INDEX["hair"]).all()
    assert (labels[10:, :10] == PARSING_INDEX["right_eye"]).all()
    assert (labels[10:, 10:] == PARSING_INDEX["left_eye"]).all()


def test_celebamask_classes_map_to_ours() -> None:
    names = ["background", "skin", "l_brow", "r_brow", "nose", "mouth", "u_lip", "l_lip", "hair"]
    names += ["neck", "cloth", "hat", "eye_g"]
    ids = np.array([[parsing.CELEBAMASK_CLASSES.index(n) for n in names]], dtype=np.uint8)
    out = [PARSING_CLASSES[i] for i in parsing.celebamask_to_ours(ids, midline_x=3)[0]]
    assert out == [
        *("background", "skin", "right_brow", "left_brow", "nose", "inner_mouth", "upper_lip"),
        *("lower_lip", "hair", "background", "background", "background", "skin"),
    ]


def test_bisenet_checkpoint_problems_are_named(bisenet_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --parser-weights"):
        parsing.make_parser("bisenet")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"garbage\.pth: cannot read BiSeNet weights"):
        parsing.make_parser("bisenet", garbage)
    other = tmp_path / "other.pth"
    torch.save({"backbone.weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match=r"other\.pth: not a face-parsing BiSeNet"):
        parsing.make_parser("bisenet", other)
    # DataParallel prefixes and old checkpoints without BatchNorm counters load as they are.
    state = torch.load(bisenet_weights, weights_only=True)
    wrapped = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    old_style = tmp_path / "wrapped.pth"
    torch.save({"state_dict": wrapped}, old_style)
    assert isinstance(parsing.load_bisenet(old_style), parsing.BiSeNet)
