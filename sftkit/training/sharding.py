"""Data-parallel wrapping: DDP for LoRA and small models, FSDP2 (`fully_shard`) for full fine-tuning.

With FSDP every process holds a shard of each weight, so state is gathered (on every process, collectively)
into full tensors before rank 0 writes checkpoints or exports, and full state is loaded back on all ranks.
"""

from __future__ import annotations

import contextlib

import torch

from sftkit.training.checkpoint import load_trainable_state, trainable_state
from sftkit.training.distributed import World
from sftkit.models import unwrap


def wrap(loss_module: torch.nn.Module, model: torch.nn.Module, world: World, fsdp: bool) -> torch.nn.Module:
    """Shard (FSDP) or replicate (DDP) for multi-process runs; unchanged for one process."""
    if not world.distributed:
        return loss_module
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in unwrap(model).get_decoder().layers:
            fully_shard(layer)
        # The root is the loss wrapper, not the model: the loss calls the decoder and the output head
        # directly, and the root's forward hook is what gathers the embedding, final norm and head.
        fully_shard(loss_module)
        return loss_module
    return torch.nn.parallel.DistributedDataParallel(
        loss_module, device_ids=[world.device.index] if world.device.type == "cuda" else None)


def grad_sync(loss_module, sync: bool, fsdp: bool):
    """Context for one micro-batch's backward: gradients are reduced across processes only when `sync`."""
    if fsdp:
        loss_module.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    if not sync and hasattr(loss_module, "no_sync"):
        return loss_module.no_sync()
    return contextlib.nullcontext()


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


_PREFIX = "model."  # the FSDP root is CausalLMLoss, which holds the model as `.model`


def model_state(loss_module, model, fsdp: bool) -> dict[str, torch.Tensor]:
    """Full trainable state named as in the model (collective under FSDP; complete on rank 0)."""
    if not fsdp:
        return trainable_state(model)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    full = get_model_state_dict(loss_module, options=_options(cpu_offload=True))
    return {k.removeprefix(_PREFIX): v.contiguous() for k, v in full.items()}


def optimizer_state(loss_module, optimizer, fsdp: bool) -> dict:
    if not fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(loss_module, optimizer, options=_options(cpu_offload=True))


def load_model_state(loss_module, model, state: dict, fsdp: bool) -> None:
    if not fsdp:
        load_trainable_state(model, state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(loss_module, {_PREFIX + k: v for k, v in state.items()}, options=_options())


def load_optimizer_state(loss_module, optimizer, state: dict, fsdp: bool) -> None:
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(loss_module, optimizer, state, options=_options())


def total_norm(norm) -> torch.Tensor:
    """`clip_grad_norm_` returns a DTensor under FSDP; the full value is what is logged and checked."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
