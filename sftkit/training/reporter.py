"""Terminal output of a training run: start-up numbers, a progress bar with ETA/loss/tokens per second, summary."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class Reporter:
    """Prints only on the main process; every method is a no-op when disabled."""

    def __init__(self, enabled: bool = True, title: str = "sftkit train"):
        self.enabled = enabled
        self.title = title
        self.console = Console(stderr=True)
        self.progress = None
        self.task = None

    def startup(self, numbers: dict) -> None:
        if not self.enabled:
            return
        table = Table(title=self.title, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in numbers.items():
            table.add_row(key, str(value))
        self.console.print(table)

    def note(self, text: str) -> None:
        if self.enabled:
            (self.progress.console if self.progress else self.console).print(text)

    def start_loop(self, total_steps: int, done: int) -> None:
        if not self.enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console, transient=False)
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=done, info="")

    def step(self, row: dict) -> None:
        if not self.enabled or self.progress is None:
            return
        info = f"loss {row['train_loss']:.4f}  {row['tokens_per_second']:,.0f} tok/s  lr {row['lr']:.2e}"
        if row.get("val_loss") is not None:
            info += f"  val {row['val_loss']:.4f}"
            self.progress.console.print(f"step {row['step']}: validation loss {row['val_loss']:.4f}")
        self.progress.update(self.task, completed=row["step"], info=info)

    def end_loop(self) -> None:
        if self.enabled and self.progress is not None:
            self.progress.stop()
            self.progress = None

    def summary(self, summary: dict) -> None:
        if not self.enabled:
            return
        table = Table(title="summary", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        keys = ("steps", "initial_val_loss", "best_val_loss", "best_step", "early_stopped", "trained_tokens",
                "train_tokens_per_second", "wall_seconds", "peak_memory_mb")
        for key in keys:
            value = summary.get(key)
            table.add_row(key, f"{value:,.4f}" if isinstance(value, float) else str(value))
        for name, path in summary.get("outputs", {}).items():
            table.add_row(name, path)
        self.console.print(table)
