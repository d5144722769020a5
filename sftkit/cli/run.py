"""`sftkit train`, `dpo`, `estimate`, `config example`, `model path`: start and size training runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import ResumeOpt, TrainSkipBadRowsOpt, app, config_app, model_app


@model_app.command("path")
def model_path(name: Annotated[str, typer.Argument(help="`default` or a model name")] = "default"):
    """Print the local directory of a model's HF checkpoint (converting the default once)."""
    from sftkit.models import resolve_model_path

    print(resolve_model_path(name))


@config_app.command("example")
def config_example(kind: Annotated[str, typer.Argument(help="sft or dpo")] = "sft"):
    """Print a documented starting config with every default."""
    from sftkit import config

    if kind == "dpo":
        from sftkit.recipes.dpo_config import DPOConfig

        print(config.example_yaml(DPOConfig), end="")
    else:
        print(config.example_yaml(), end="")


# Path parameters say readable=False: sftkit.paths checks them and its one line says how to fix the path.
@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (see `sftkit config example`)", readable=False)],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set train.learning_rate=1e-4")] = None,
    resume: ResumeOpt = False,
    skip_bad_rows: TrainSkipBadRowsOpt = False,
):
    """Fine-tune a model (LoRA or full) on instruction data; works under torchrun for several processes."""
    from sftkit.config import load_config

    sets = list(overrides or []) + (["data.on_bad_row=skip"] if skip_bad_rows else [])
    cfg = load_config(str(config), sets, check_paths="all")  # every config and path problem, before any model loads
    from sftkit.recipes.sft import train

    train(cfg, resume=resume)


@app.command("dpo")
def dpo_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (see `sftkit config example dpo`)", readable=False)],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set dpo.beta=0.2")] = None,
    resume: ResumeOpt = False,
    skip_bad_rows: TrainSkipBadRowsOpt = False,
):
    """Align a model (or an SFT run) to preference pairs with DPO or IPO; works under torchrun."""
    from sftkit.config import load_config
    from sftkit.recipes.dpo_config import DPOConfig

    sets = list(overrides or []) + (["data.on_bad_row=skip"] if skip_bad_rows else [])
    cfg = load_config(str(config), sets, model_cls=DPOConfig, check_paths="all")  # all problems before any model loads
    from sftkit.recipes.dpo import train_dpo

    train_dpo(cfg, resume=resume)


@app.command("estimate")
def estimate_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config (the one `sftkit train` takes)", readable=False)],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set train.method=full")] = None,
    price: Annotated[Optional[list[str]], typer.Option("--price", help="DEVICE=USD per hour (H100, A100, L4, cpu), repeatable")] = None,
    mfu: Annotated[float, typer.Option(help="assumed GPU utilisation: model FLOPs / dense bf16 peak")] = 0.35,
    no_measure: Annotated[bool, typer.Option("--no-measure", help="skip timing one layer on this CPU")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Before a run: parameters, tokens, FLOPs, memory, and time and cost on H100, A100, L4 and this CPU."""
    from sftkit.config import load_config
    from sftkit.estimate import estimate_run, parse_prices, print_estimate

    cfg = load_config(str(config), list(overrides or []), check_paths="inputs")
    result = estimate_run(cfg, prices=parse_prices(price), gpu_mfu=mfu, measure=not no_measure)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_estimate(result, root.out)
