"""Processes started by ``torchrun``: which rank this is, its device, and the process group.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a plain
``python`` run has none of them and is rank 0 of 1, with no process group.
Ranks talk over NCCL when they run on CUDA devices and over gloo on CPU.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.io import DataError


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = Ranks(rank=0, world_size=1, device=torch.device("cpu"))


def select_device(setting: str, setting_name: str) -> torch.device:
    """``setting`` is "auto", "cpu" or "cuda"; each rank takes the GPU of its ``LOCAL_RANK``."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise DataError(
            f"params.yaml: {setting_name} is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'"
        )
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


@contextmanager
def process_group(device_setting: str, setting_name: str) -> Iterator[Ranks]:
    """This process's rank and device; joins (and finally leaves) the process group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = select_device(device_setting, setting_name)
    if world_size > 1:
        # A rank that finished its share waits at the next collective for the
        # slowest one; at AG scale that can exceed the 30-minute default.
        torch.distributed.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(hours=12),
        )
    try:
        yield Ranks(rank, world_size, device)
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()


def broadcast_from_main(ranks: Ranks, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (picklable objects)."""
    if not ranks.distributed:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_on_main(ranks: Ranks, value: Any) -> list[Any] | None:
    """Every rank's ``value`` in rank order on rank 0; ``None`` on the others."""
    if not ranks.distributed:
        return [value]
    gathered: list[Any] | None = [None] * ranks.world_size if ranks.is_main else None
    torch.distributed.gather_object(value, gathered, dst=0)
    return gathered


def sum_over_ranks(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise sum of ``values`` over all ranks."""
    if not ranks.distributed:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=ranks.device)
    torch.distributed.all_reduce(total)
    return total.tolist()
