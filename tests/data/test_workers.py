import ctypes.util
import subprocess
import sys

import pytest

from finecliper.data.workers import reuse_freed_buffers

# A worker's work on 20 random 16 x 224 px clips (crop, flip, both renderings); prints the
# page faults per clip.
WORKLOAD = """
import resource, sys
import numpy as np, torch
from finecliper.data.transforms import ClipSample, ClipTransform
from finecliper.data.video import frames_to_tensor
from finecliper.face.render import render_landmarks, render_parsing
from finecliper.data.workers import reuse_freed_buffers

torch.set_num_threads(1)
if sys.argv[1] == "tuned":
    assert reuse_freed_buffers()
rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
transform = ClipTransform(224, train=True)

def one_clip():
    frames = frames_to_tensor(rng.integers(0, 256, (16, 224, 224, 3), dtype=np.uint8))
    maps = torch.from_numpy(rng.integers(0, 11, (16, 224, 224), dtype=np.uint8))
    sample = transform(ClipSample(frames, maps, torch.rand(16, 68, 2) * 224), generator)
    render_parsing(sample.frames, sample.parsing)
    render_landmarks(sample.frames, sample.landmarks)

one_clip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    one_clip()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_clip(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libc.so" not in (ctypes.util.find_library("c") or ""),
    reason="glibc only",
)
def test_workers_reuse_freed_buffers_instead_of_faulting_in_new_pages():
    # One clip's frames alone are 588 pages, and a clip allocates several such buffers. By
    # default glibc gave 400 to 4,900 page faults per clip here (it varies from run to run);
    # tuned, 0 to 110: the buffers are reused.
    assert _faults_per_clip("tuned") < 200


def test_tuning_reports_whether_it_applied():
    applied = reuse_freed_buffers()
    assert applied is (sys.platform.startswith("linux") and applied)
