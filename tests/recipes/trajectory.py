"""What the recipes' equivalence tests compare: each optimizer step's gradients and weights, recorded with plain
SGD standing in for AdamW, and the tolerances that follow from float32 arithmetic.

Why not AdamW: its first update is lr * g / (sqrt(g^2) + eps), i.e. about lr * sign(g) for every element however
small g is. An element whose exact gradient is ~0 carries only float-summation noise, whose sign depends on the
BLAS kernel, the thread count and the CPU model; two correct runs then differ there by up to 2 * lr per step, and
so does everything downstream. SGD without momentum moves the weights by -lr * g: the noise stays at the size
of the gradients' rounding error and so do the differences between two correct runs.

Tolerances (float32, unit roundoff u = 2^-24 = 6.0e-8). The longest reduction in a step is over the
vocabulary (N = 49,152 logits: the logsumexp forward, the logits' backward). The worst-case bound for a sum
of N terms, N * u = 2.9e-3 of the sum of the terms' magnitudes, is far above what blocked, vectorised sums do:
their rounding errors grow like sqrt(N) * u = 1.3e-5. A step chains a handful of such reductions (the logits,
2 layers, the sum over a step's ~300 trained tokens, the all-reduce across processes), whose errors add:
GRAD_RTOL = 1e-4 of each tensor's largest element (an element whose exact value cancels to ~0 has no relative
accuracy of its own). Another kernel (AVX2 or AVX-512, MKL or OpenBLAS), thread count or batch shape
changes the order of these sums, not their length, so the estimate holds on any CPU. The bugs these tests
exist for (a mean of micro-batch means, a dropped micro-batch or process, attention across packed examples)
move gradients by 1e-2 of their scale or more.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sftkit.training.optim import param_groups

GRAD_RTOL = 1e-4
# A loss (or a sequence log-probability) is a sum of per-token cross-entropies, all of one sign, so no
# cancellation: its relative error is at most its worst token's. A token's logsumexp carries ~sqrt(N) * u =
# 1.3e-5 of relative error in its sum of exponentials, i.e. 1.3e-5 absolute after the log; on the tiny random
# models here a token's loss is near ln 49,152 = 10.8, so that is ~1e-6 relative, and the logits' own rounding
# from the layers below adds about as much again. LOSS_RTOL keeps a factor of 10 above that.
LOSS_RTOL = 2e-5


@dataclass
class Step:
    """One optimizer step, by parameter name: the gradients the optimizer used (accumulated over micro-batches
    and processes, clipped) and the weights before and after the update."""

    grads: dict[str, torch.Tensor]
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]


def recording_sgd(on_step):
    """A drop-in for sftkit.training.optim.build_optimizer: SGD at the configured learning rate (no momentum, no weight
    decay, so each update is -lr * g) that calls on_step(Step) after every optimizer step."""

    def build(model: torch.nn.Module, train, fused: bool = True) -> torch.optim.SGD:
        names = {id(p): name for name, p in model.named_parameters()}
        optimizer = torch.optim.SGD(param_groups(model, 0.0), lr=train.learning_rate)
        step = optimizer.step

        def recorded(self, *args, **kwargs):
            if all(float(group["lr"]) == 0 for group in self.param_groups):
                # not a training step: FSDP's optimizer state_dict probes a stateless optimizer with a step at lr 0
                return step(*args, **kwargs)
            params = [p for group in self.param_groups for p in group["params"]]
            snapshot = lambda tensors: {names[id(p)]: t.detach().clone() for p, t in zip(params, tensors)}  # noqa
            grads, before = snapshot(p.grad for p in params), snapshot(params)
            result = step(*args, **kwargs)
            on_step(Step(grads, before, snapshot(params)))
            return result

        optimizer.step = types.MethodType(recorded, optimizer)  # a bound method, as the LR scheduler expects
        return optimizer

    return build


def use_recording_sgd(monkeypatch) -> list[Step]:
    """Swap the optimizer both recipes build (in sftkit.training.loop) for recording SGD; returns the growing
    step list."""
    import sftkit.training.loop as loop

    steps: list[Step] = []
    monkeypatch.setattr(loop, "build_optimizer", recording_sgd(steps.append))
    return steps


FIELDS = ("grads", "before", "after")


def save_step(directory: Path, number: int, step: Step) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({f"{field}/{k}": v.contiguous() for field in FIELDS for k, v in getattr(step, field).items()},
              directory / f"step-{number:04d}.safetensors")


def load_steps(directory: Path) -> list[Step]:
    steps = []
    for path in sorted(directory.glob("step-*.safetensors")):
        tensors = load_file(path)
        steps.append(Step(*({k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(field + "/")}
                            for field in FIELDS)))
    return steps


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    """Every element within rtol of the tensor's largest magnitude (see the module docstring). A tensor that is
    exactly zero (LoRA A's gradient while B is still 0) must be exactly zero in both runs."""
    scale = float(expected.abs().max())
    if scale == 0:
        assert torch.count_nonzero(actual) == 0, f"{what}: expected exact zeros"
        return
    torch.testing.assert_close(actual, expected, rtol=0, atol=rtol * scale, msg=lambda m: f"{what}: {m}")


def assert_same_trajectory(steps: list[Step], reference: list[Step], rtol: float = GRAD_RTOL) -> None:
    """Same number of steps and starting weights, each step's gradients to rtol of their scale, and the final
    weights to rtol of the distance travelled. Under SGD that distance is -sum(lr_t * g_t), linear in the
    gradients, so it inherits their tolerance; each update also rounds the weight to its float32 grid, half an
    ulp of |w| (eps * |w| bounds it), once per step."""
    assert len(steps) == len(reference) > 1
    for name, weight in reference[0].before.items():
        assert torch.equal(steps[0].before[name], weight), f"{name}: different starting weights"
    for number, (step, ref) in enumerate(zip(steps, reference), 1):
        assert step.grads.keys() == ref.grads.keys()
        for name, grad in ref.grads.items():
            assert_close_to_scale(step.grads[name], grad, rtol, f"step {number} gradient of {name}")
    eps = torch.finfo(torch.float32).eps
    for name, start in reference[0].before.items():
        final, travelled = reference[-1].after[name], reference[-1].after[name] - start
        assert torch.count_nonzero(travelled) > 0, f"{name} never moved: the comparison could not fail"
        torch.testing.assert_close(steps[-1].after[name], final, rtol=len(steps) * eps,
                                   atol=rtol * float(travelled.abs().max()), msg=lambda m: f"weights {name}: {m}")
