"""Shared material for the finecliper.text tests: seed Fig. 4 pairs, landmarks, clips, models.

FIG4: the four generated/refined pairs of the seed's Fig. 4 (FineCLIPER supplementary material),
transcribed with the PDF-extraction artefacts undone: words glued at line breaks ("tuckedin",
"hischin", "emphasizingher", "oneof", "adownturned", "impliedactions", "thecombination",
"poignantand") are split again, letter-spaced words ("s p e e c h") joined, and missing spaces
after punctuation ("downcast,and", "introspection.The") restored.
"""

import csv
import json
import time
from pathlib import Path

import av
import numpy as np

FIG4 = [
    (
        "The man in the video displays a surprised expression. His eyes widen, and his eyebrows "
        "raise, indicating a sudden and unexpected event. The mouth remains slightly open, and "
        "the chin is slightly tucked in, suggesting a momentary pause in speech or thought. The "
        "gaze direction is directed upwards, possibly towards the source of the surprise. "
        "Overall, the combination of these facial features and implied actions conveys a sense "
        "of surprise and curiosity.",
        "His eyes widen, and his eyebrows raise. The mouth remains slightly open, and the chin "
        "is slightly tucked in, suggesting a momentary pause in speech or thought. The gaze "
        "direction is directed upwards.",
    ),
    (
        "The man in the video displays a happy expression with a slight smile on his face. His "
        "eyes are bright and focused, and his chin is slightly uplifted. The man's gaze is "
        "directed towards the camera, indicating a friendly and approachable demeanor. The "
        "facial muscles are relaxed, and there is no indication of anger or any other negative "
        "emotion. The overall impression is one of happiness and positivity.",
        "His eyes are bright and focused, and his chin is slightly uplifted. The man's gaze is "
        "directed towards the camera, indicating a friendly and approachable demeanor. The "
        "facial muscles are relaxed.",
    ),
    (
        "The woman in the video displays a sad expression. Her eyes appear to be downcast, and "
        "her eyebrows are furrowed, conveying a sense of sadness. The corners of her mouth are "
        "turned down, and her chin is slightly protruding, further emphasizing her sadness. Her "
        "gaze is directed downwards, and her breathing appears to be slower and more shallow, "
        "suggesting a sense of contemplation or introspection. The combination of these facial "
        "features and implied actions creates a poignant and emotionally charged scene.",
        "Her eyes appear to be downcast, and her eyebrows are furrowed. The corners of her mouth "
        "are turned down, and her chin is slightly protruding. Her gaze is directed downwards, "
        "and her breathing appears to be slower and more shallow.",
    ),
    (
        "The man in the video is portrayed as sad, with his facial expression showing a "
        "downturned mouth, puffy eyes, and a furrowed brow. The man's gaze is directed "
        "downwards, and his chin is tucked in, further emphasizing his sadness. The implied "
        "actions of his breathing appear to be shallow and slow, which is a common sign of "
        "emotional distress. The combination of these facial features and implied actions "
        "collectively convey a sense of sadness and vulnerability.",
        "His facial expression showing a downturned mouth, puffy eyes, and a furrowed brow. The "
        "man's gaze is directed downwards, and his chin is tucked in. The implied actions of his "
        "breathing appear to be shallow and slow.",
    ),
]

# ---------------------------------------------------------------------------------------------
# Shared builders for the text tests: landmarks, H.264 clips, custom datasets, tiny MLLMs.

# A frontal iBUG-68 face in a 100 x 100 frame: eyes 36 px apart, image-left = subject's right.
_JAW = [
    (50 + 40 * np.cos(np.pi - i * np.pi / 16), 45 + 45 * np.sin(np.pi - i * np.pi / 16))
    for i in range(17)
]
_BROWS = [(22 + 5 * i, 30 - (2 if i in (1, 2, 3) else 0)) for i in range(5)]
_BROWS += [(58 + 5 * i, 30 - (2 if i in (1, 2, 3) else 0)) for i in range(5)]
_NOSE = [(50, 38), (50, 44), (50, 50), (50, 55), (42, 58), (46, 59), (50, 60), (54, 59), (58, 58)]
_EYES = [(25, 40), (29, 37), (35, 37), (39, 40), (35, 43), (29, 43)]
_EYES += [(61, 40), (65, 37), (71, 37), (75, 40), (71, 43), (65, 43)]
_OUTER_LIPS = [(38, 70), (42, 67), (46, 66), (50, 66.5), (54, 66), (58, 67), (62, 70)]
_OUTER_LIPS += [(58, 73), (54, 75), (50, 75.5), (46, 75), (42, 73)]
_INNER_LIPS = [(40, 70), (45, 69), (50, 69), (55, 69), (60, 70), (55, 71), (50, 71), (45, 71)]
NEUTRAL_FACE = np.array(_JAW + _BROWS + _NOSE + _EYES + _OUTER_LIPS + _INNER_LIPS, np.float32)
assert NEUTRAL_FACE.shape == (68, 2)


def bump(frames: int, start: float = 0.3, end: float = 0.7) -> np.ndarray:
    """0 outside [start, end] of the clip, rising to 1 in its middle."""
    t = np.linspace(0, 1, frames)
    return np.clip(1 - np.abs(t - (start + end) / 2) / ((end - start) / 2), 0, 1)


def animate(frames: int = 16, **moves: float) -> np.ndarray:
    """(T, 68, 2) landmarks of the neutral face with movements (pixels) along a bump profile.

    brow_raise, inner_brow_raise (the two inner brow ends only), eye_widen, nose_wrinkle (the
    nose tip and base rise), mouth_open, corner_lift, head_shift_x, head_roll (degrees), blink_at
    (frame index of a single-frame blink).
    """
    profile = bump(frames)[:, None]
    points = np.repeat(NEUTRAL_FACE[None], frames, axis=0).copy()
    points[:, 17:27, 1] -= moves.get("brow_raise", 0) * profile
    points[:, [21, 22], 1] -= moves.get("inner_brow_raise", 0) * profile
    points[:, 30:36, 1] -= moves.get("nose_wrinkle", 0) * profile
    for upper, lower in (([37, 38, 43, 44], [40, 41, 46, 47]),):
        points[:, upper, 1] -= moves.get("eye_widen", 0) * profile
        points[:, lower, 1] += moves.get("eye_widen", 0) * profile
    points[:, [55, 56, 57, 58, 59, 65, 66, 67], 1] += moves.get("mouth_open", 0) * profile
    points[:, [48, 54, 60, 64], 1] -= moves.get("corner_lift", 0) * profile
    if "blink_at" in moves:
        t = int(moves["blink_at"])
        for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
            middle = (points[t, upper, 1] + points[t, lower, 1]) / 2
            points[t, [upper, lower], 1] = middle
    points[:, :, 0] += moves.get("head_shift_x", 0) * profile
    angle = np.radians(moves.get("head_roll", 0)) * profile[:, 0]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = points[..., 0] - 50, points[..., 1] - 50
    points[..., 0], points[..., 1] = 50 + cos * x - sin * y, 50 + sin * x + cos * y
    return points.astype(np.float32)


def clip_frames(frames: int, size: int, seed: int) -> np.ndarray:
    """(T, size, size, 3) uint8 frames: a moving bright square on a per-clip colour."""
    rng = np.random.default_rng(seed)
    video = np.empty((frames, size, size, 3), np.uint8)
    video[:] = rng.integers(40, 200, 3, dtype=np.uint8)
    for t in range(frames):
        top = (t * 3) % (size - 16)
        video[t, top : top + 16, 8:24] = 255
    return video


def write_h264(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_video_dataset(root: Path, clips: list[tuple[str, str, str]], frames: int = 16) -> Path:
    """A custom-manifest dataset of H.264 clips: (name, label, split) -> ``root/manifest.csv``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for i, (name, label, split) in enumerate(clips):
            write_h264(root / f"{name}.mp4", clip_frames(frames, 64, seed=i))
            writer.writerow([f"{name}.mp4", label, split])
    return root / "manifest.csv"


def save_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


def tiny_video_llava(folder: Path) -> Path:
    """A random tiny Video-LLaVA with its tokenizer and video preprocessor config, saved."""
    from transformers import VideoLlavaForConditionalGeneration

    from finecliper.text.bench import build_word_tokenizer, video_llava_config
    from finecliper.text.prompts import FIG3_LABELLED

    tokenizer = build_word_tokenizer(
        [FIG3_LABELLED.template, "USER: ASSISTANT: Happy Sad"], ["<image>", "<video>"], 512
    )
    config = video_llava_config(
        "tiny",
        512,
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    config.text_config.pad_token_id = tokenizer.pad_token_id
    VideoLlavaForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_json(
        folder / "video_preprocessor_config.json",
        {"size": {"shortest_edge": 56}, "crop_size": {"height": 56, "width": 56}},
    )
    return folder


QWEN_SPECIAL = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|video_pad|>",
    "<|image_pad|>",
]


def tiny_qwen2_vl(folder: Path) -> Path:
    """A random tiny Qwen2-VL with its tokenizer and a small pixel budget, saved."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from finecliper.text.bench import build_word_tokenizer
    from finecliper.text.prompts import FIG3_LABELLED

    tokenizer = build_word_tokenizer(
        [FIG3_LABELLED.template, "system user assistant You are a helpful assistant."],
        QWEN_SPECIAL,
        512,
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL}
    config = Qwen2VLConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": 512,
            "max_position_embeddings": 2048,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_json(
        folder / "video_preprocessor_config.json",
        {"size": {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}},
    )
    return folder


class ChatServer:
    """A chat-completions server on 127.0.0.1 for tests; ``respond(payload)`` decides replies.

    ``respond`` returns (HTTP status, body bytes, seconds to wait before answering). The server
    records every payload and headers, and the most requests it had in flight at once.
    """

    def __init__(self, respond):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self
        self.respond = respond
        self.requests: list[tuple[dict, dict]] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                payload = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append((payload, dict(self.headers)))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    status, body, delay = server.respond(payload)
                    time.sleep(delay)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with server.lock:
                        server.active -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def prompt_of(payload: dict) -> str:
    """The text part of a chat payload's user message."""
    content = payload["messages"][0]["content"]
    return next(part["text"] for part in content if part["type"] == "text")
