"""`python -m tests.recipes.sgd_cli ARGS...`: the sftkit CLI with both recipes' AdamW swapped for recording SGD
(tests/recipes/trajectory.py), for the equivalence tests that train in subprocesses (under torchrun).

Every process records each step (FSDP shards are gathered, collectively); rank 0 writes them to
$SFTKIT_TEST_STEPS_DIR as step-NNNN.safetensors, read back with trajectory.load_steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import sftkit.training.loop as loop
from sftkit.cli import main
from tests.recipes.trajectory import FIELDS, Step, recording_sgd, save_step


def _full(tensor):
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def _writer(directory: Path):
    written: list[int] = []

    def write(step: Step) -> None:
        full = Step(*({k: _full(v) for k, v in getattr(step, field).items()} for field in FIELDS))
        written.append(len(written) + 1)
        if int(os.environ.get("RANK", "0")) == 0:
            save_step(directory, written[-1], full)

    return write


if __name__ == "__main__":
    build = recording_sgd(_writer(Path(os.environ["SFTKIT_TEST_STEPS_DIR"])))
    loop.build_optimizer = build  # where both recipes build their optimizer
    main()
