"""A diverging run stops with one line, keeps the last good checkpoint and writes no NaN
metrics; under DDP a divergence on one rank stops every rank (issue #16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_distributed import free_port
from tiny_run import tiny_overrides

from finecliper import cli
from finecliper.runtime.checkpoint import read_checkpoint_info
from finecliper.train import loop
from finecliper.train.distributed import Context
from finecliper.train.divergence import DivergedError, check_finite_loss, check_finite_weights


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "error" in line.lower()]
    return line


def _train_argv(tiny_synth: Path, tiny_backbone: Path, out: Path, *overrides: str) -> list[str]:
    return [
        "train",
        "synth",
        *tiny_overrides(tiny_synth, tiny_backbone),
        *overrides,
        "--out",
        str(out),
    ]


def test_huge_learning_rate_stops_with_one_line_and_no_metrics(
    tiny_synth, tiny_backbone, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = _train_argv(tiny_synth, tiny_backbone, out, "train.epochs=2", "train.lr=1e30")
    assert cli.main(argv) == 1
    line = _error_line(capsys)
    assert line.startswith("finecliper: error: training diverged: ")
    assert "no checkpoint written" in line and "train.lr" in line
    assert not (out / "metrics.json").exists()
    assert not (out / "checkpoints" / "last.safetensors").exists()


def test_divergence_after_a_good_epoch_keeps_its_checkpoint(
    tiny_synth, tiny_backbone, tmp_path, capsys, monkeypatch
):
    real_epoch = loop._train_epoch

    def poison_second_epoch(run, trainer, loader, optimizer, scheduler, accumulation, epoch):
        entry = real_epoch(run, trainer, loader, optimizer, scheduler, accumulation, epoch)
        if epoch == 1:  # as an overflow in the last step would leave it
            with torch.no_grad():
                next(iter(run.model.trainable_parameters())).fill_(float("nan"))
        return entry

    monkeypatch.setattr(loop, "_train_epoch", poison_second_epoch)
    out = tmp_path / "run"
    assert cli.main(_train_argv(tiny_synth, tiny_backbone, out, "train.epochs=3")) == 1
    last = out / "checkpoints" / "last.safetensors"
    assert _error_line(capsys).startswith(
        "finecliper: error: training diverged: non-finite weights after epoch 2 ("
    )
    assert read_checkpoint_info(last)[2]["epoch"] == 1
    assert not (out / "metrics.json").exists()
    assert (out / "evals" / "test_epoch001.npz").is_file()
    assert not (out / "evals" / "test_epoch002.npz").exists()  # no NaN predictions written


def _rank_checks(rank: int, world: int, port: int, out: Path) -> None:
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world)
    context = Context(rank, world, rank)
    try:
        check_finite_loss(torch.tensor(1.0), 0, 0, out, context)  # all finite: no error
        loss = torch.tensor(float("nan") if rank == 1 else 0.5)
        for check in (
            lambda: check_finite_loss(loss, 0, 3, out, context),
            lambda: check_finite_weights({"w": loss.reshape(1)}, 0, out, context),
        ):
            try:
                check()
            except DivergedError as exc:
                (out / f"rank{rank}.txt").open("a").write(f"{exc}\n")
    finally:
        dist.destroy_process_group()


def test_ddp_divergence_on_one_rank_stops_every_rank(tmp_path):
    mp.spawn(_rank_checks, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    rank0 = (tmp_path / "rank0.txt").read_text().splitlines()
    rank1 = (tmp_path / "rank1.txt").read_text().splitlines()
    assert len(rank0) == len(rank1) == 2
    assert "loss is not finite on another rank at epoch 1, batch 4" in rank0[0]
    assert "loss is nan at epoch 1, batch 4" in rank1[0]
    assert "non-finite weights after epoch 1 on another rank" in rank0[1]
    assert "non-finite weights after epoch 1 (w)" in rank1[1]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_single_process_checks_need_no_process_group(value, tmp_path):
    with pytest.raises(DivergedError, match="batch 1"):
        check_finite_loss(torch.tensor(value), 0, 0, tmp_path)
