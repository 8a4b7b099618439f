"""The rich rendering of the progress bars (``cli.progress.Bars``), imported
only when stderr is a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def progress_on_stderr() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), _Amount(), _Time(),
        console=Console(stderr=True),
        redirect_stdout=False, redirect_stderr=False,  # stdout is the command's output, untouched
    )


class _Amount(ProgressColumn):
    """How much is done (of how much), and how fast, in the task's unit."""

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        speed = task.finished_speed or task.speed
        if unit == "bytes":
            done = decimal(int(task.completed)) + (f"/{decimal(int(task.total))}" if task.total else "")
            rate = f"{decimal(int(speed))}/s" if speed else ""
        else:
            done = f"{int(task.completed):,}" + (f"/{int(task.total):,}" if task.total else "") + f" {unit}"
            rate = f"{speed:,.0f}/s" if speed else ""
        return Text(f"{done}  {rate}".rstrip(), style="progress.download")


class _Time(ProgressColumn):
    """Time left where the size is known, time spent otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self._left, self._spent = TimeRemainingColumn(elapsed_when_finished=True), TimeElapsedColumn()

    def render(self, task: Task) -> Text:
        return self._spent.render(task) if task.total is None else self._left.render(task)
