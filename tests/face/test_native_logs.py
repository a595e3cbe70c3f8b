import subprocess
import sys

# Builds our MediaPipe tools, waits, then runs them on a blank frame and on a real face.
OURS = """
import time
import numpy as np
from skimage import data
from finecliper.face.detect import FaceDetector
from finecliper.face.landmarks import MeshLandmarker
face, blank = np.ascontiguousarray(data.astronaut()), np.zeros((64, 64, 3), np.uint8)
with MeshLandmarker() as mesh, FaceDetector() as detector:
    time.sleep(0.5)  # a graph's threads log on their own time after it is built
    for image in (blank, face, face):
        assert (mesh(image) is None) == (image is blank)
        assert (len(detector(image)) == 0) == (image is blank)
print("done")
"""
RAW = """
import numpy as np
from skimage import data
from finecliper.face.landmarks import import_solutions
mesh = import_solutions().face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)
assert mesh.process(np.ascontiguousarray(data.astronaut())).multi_face_landmarks
print("done")
"""
FILTER = """
import os, sys
from finecliper.face.native_logs import filtered_native_stderr
with filtered_native_stderr():
    os.write(2, b"W0000 inference_feedback_manager.cc:114] Feedback manager requires\\n")
    os.write(2, b"a real problem\\n")
    print("from python", file=sys.stderr)
print("done")
"""

THREADS = """
import os, threading, time
from finecliper.face.native_logs import filtered_native_stderr
original = os.fstat(2).st_ino

def work(name):
    for k in range(50):
        with filtered_native_stderr():
            os.write(2, f"{name} {k}\\n".encode())
            time.sleep(0.001)  # lets the other thread run inside the capture

threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert os.fstat(2).st_ino == original
print("done")
"""


def _stderr(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "done"
    return done.stderr


def test_mediapipe_start_up_lines_do_not_reach_the_terminal():
    raw = _stderr(RAW)  # the lines this is about, from MediaPipe used directly
    assert "inference_feedback_manager" in raw and "XNNPACK" in raw
    ours = _stderr(OURS)
    for noise in ("inference_feedback_manager", "XNNPACK", "landmark_projection", "absl"):
        assert noise not in ours


def test_other_lines_written_meanwhile_are_passed_on():
    out = _stderr(FILTER)
    assert "a real problem\n" in out and "from python\n" in out
    assert "Feedback manager" not in out


def test_threads_filtering_at_once_leave_stderr_as_it_was():
    # Without the lock, descriptor 2 ended up pointing at a deleted capture file, lines lost.
    lines = _stderr(THREADS).splitlines()
    assert sorted(lines) == sorted(f"{n} {k}" for n in "ab" for k in range(50))
