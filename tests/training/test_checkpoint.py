"""Checkpoints a resume cannot use: every damaged or missing part is one UserError naming the file and what to
do, never a safetensors/torch/json traceback; a readable checkpoint reads back exactly."""

from __future__ import annotations

import pytest
import torch

from sftkit.training import checkpoint as ckpt
from sftkit.errors import UserError


@pytest.fixture
def step(tmp_path):
    state = {"w": torch.arange(4, dtype=torch.float32)}
    return ckpt.write_checkpoint(tmp_path / "checkpoints", 3, state, {"state": {}}, {"last_epoch": 3}, {"step": 3}, 2)


def test_a_complete_checkpoint_reads_back(step):
    parts = ckpt.read_checkpoint(step)
    assert torch.equal(parts["model"]["w"], torch.arange(4, dtype=torch.float32))
    assert (parts["scheduler"], parts["trainer_state"]) == ({"last_epoch": 3}, {"step": 3})


@pytest.mark.parametrize("name, damage, reason", [
    ("trainable.safetensors", lambda p: p.write_bytes(p.read_bytes()[:20]), "(Error while deserializing header"),
    ("optimizer.pt", lambda p: p.write_bytes(p.read_bytes()[:30]), "(PytorchStreamReader failed reading zip archive"),
    ("scheduler.pt", lambda p: p.unlink(), "(No such file or directory)"),
    ("trainer_state.json", lambda p: p.write_text("{\"step\": "), "(Expecting value: line 1 column 10 (char 9))"),
], ids=["truncated-weights", "truncated-optimizer", "missing-scheduler", "half-written-state"])
def test_damaged_part_names_the_file_and_the_way_out(step, name, damage, reason):
    damage(step / name)
    with pytest.raises(UserError) as info:
        ckpt.read_checkpoint(step)
    message = str(info.value)
    assert message.startswith(f"checkpoint file {step / name} cannot be read {reason}")
    assert message.endswith(f": delete {step} to resume from the checkpoint before it, or start again without "
                            "--resume")
    assert "\n" not in message
