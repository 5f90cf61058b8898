"""Progress reporting for long guest builds: a bar on a terminal, lines in a log.

A kernel build takes minutes. On a terminal the user gets a rich progress
bar; in CI logs (not a tty) the same events become plain lines every tenth
of the way, so a log never shows minutes of silence and never fills with
carriage-return noise either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class Task(Protocol):
    """One measurable step: advance it as work completes."""

    def advance(self, amount: int = 1, note: str = "") -> None: ...


class Reporter:
    """Phase lines and progress tasks, written to stderr."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._console = Console(file=stream or sys.stderr, highlight=False)
        self._quiet = quiet

    def phase(self, message: str) -> None:
        """Announce a step that has no measurable size (it should be short)."""
        if not self._quiet:
            self._console.print(f"[bold]guest:[/bold] {message}", soft_wrap=True)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Task]:
        """A step of ``total`` units; the total may be an estimate (it is capped)."""
        if self._quiet:
            yield _NullTask()
        elif self._console.is_terminal:
            with Progress(
                TextColumn("[bold]guest:[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}", style="dim"),
                TimeElapsedColumn(),
                console=self._console,
                transient=False,
            ) as progress:
                yield _BarTask(progress, progress.add_task(description, total=total, note=""))
        else:
            line = _LineTask(self._console, description, total)
            yield line
            line.finish()


class _NullTask:
    def advance(self, amount: int = 1, note: str = "") -> None:
        pass


class _BarTask:
    def __init__(self, progress: Progress, task_id: object) -> None:
        self._progress = progress
        self._id = task_id
        self._done = 0
        self._total = int(progress.tasks[0].total or 0)

    def advance(self, amount: int = 1, note: str = "") -> None:
        self._done += amount
        if self._done >= self._total:  # an estimate ran short: grow, never overflow
            self._total = self._done + max(1, self._total // 20)
            self._progress.update(self._id, total=self._total)  # type: ignore[arg-type]
        self._progress.update(self._id, advance=amount, note=note[-40:])  # type: ignore[arg-type]


class _LineTask:
    """Plain-text progress: one line per 10% and one at the end."""

    def __init__(self, console: Console, description: str, total: int) -> None:
        self._console = console
        self._description = description
        self._total = max(1, total)
        self._done = 0
        self._next_tenth = 1
        self._started = time.monotonic()
        console.print(f"[bold]guest:[/bold] {description} ...")

    def advance(self, amount: int = 1, note: str = "") -> None:
        self._done += amount
        tenth = min(9, self._done * 10 // self._total)
        if tenth >= self._next_tenth:
            self._next_tenth = tenth + 1
            elapsed = time.monotonic() - self._started
            self._console.print(
                f"[bold]guest:[/bold] {self._description}: ~{tenth * 10}% "
                f"({self._done} steps, {elapsed:.0f}s)"
            )

    def finish(self) -> None:
        elapsed = time.monotonic() - self._started
        self._console.print(
            f"[bold]guest:[/bold] {self._description}: done ({self._done} steps, {elapsed:.0f}s)"
        )
