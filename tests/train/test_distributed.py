"""Two CPU processes (gloo), as torchrun would start them: every test clip counted once."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import torch.multiprocessing as mp

from finecliper.config import Config
from finecliper.train.runs import evaluate_checkpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_rank(rank: int, world: int, port: int, config: Config, out: Path) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "HF_HUB_OFFLINE": "1",
        }
    )
    import torch.distributed as dist

    from finecliper.train.loop import train

    metrics = train(config, out, progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps(metrics))
    dist.destroy_process_group()


def read_probabilities(path: Path, classes: list[str]) -> dict[str, np.ndarray]:
    with open(path, newline="") as handle:
        return {
            row["clip_id"]: np.array([float(row[f"p_{c}"]) for c in classes])
            for row in csv.DictReader(handle)
        }


def test_two_processes_train_and_count_every_test_clip_once(tmp_path, tiny_config):
    config = tiny_config("train.epochs=1", "train.batch_size=4")
    out = tmp_path / "ddp"
    mp.spawn(train_rank, args=(2, free_port(), config, out), nprocs=2, join=True)

    rank0 = json.loads((out / "rank0.json").read_text())
    rank1 = json.loads((out / "rank1.json").read_text())
    assert rank0 == rank1  # every rank returns the same final metrics
    # 7 test clips over 2 ranks: 4 + 3, gathered once each, no padding duplicate.
    assert rank0["test_clips"] == rank0["evaluated_clips"] == 7
    ddp = read_probabilities(out / "predictions.csv", rank0["classes"])
    assert len(ddp) == 7

    single = evaluate_checkpoint(
        out / "checkpoints" / "last.safetensors", [], split="test", out=tmp_path / "single"
    )
    alone = read_probabilities(tmp_path / "single" / "predictions.csv", single["classes"])
    assert alone.keys() == ddp.keys()
    for clip_id, probabilities in ddp.items():
        np.testing.assert_allclose(probabilities, alone[clip_id], atol=1e-5)
