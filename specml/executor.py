"""One executor for every fan-out (reference labelling, per-molecule MD, library builds).

In-process by default; a Dask distributed cluster when given a scheduler address
(``tcp://host:port``), ``local:N`` for a local Dask cluster of N worker processes, or a
``dask.distributed.Client``. specml has no scheduler of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from specml.errors import InputError

if TYPE_CHECKING:
    from dask.distributed import Client, LocalCluster


@dataclass
class TaskResult:
    """Outcome of one task: ``value`` on success, else the raised ``error``."""

    index: int
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def progress_bar(transient: bool = False, disable: bool = False) -> Progress:
    """The rich progress bar used for all long work (with an ETA)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=transient,
        disable=disable,
    )


def _call(fn, item):
    try:
        return fn(item), None
    except Exception as exc:  # returned, not raised: one failure must not stop the batch
        return None, exc


class Executor:
    """Maps a function over items, yielding :class:`TaskResult` as tasks finish."""

    def __init__(self, scheduler: str | Any | None = None, show_progress: bool = True):
        self.scheduler = scheduler
        self.show_progress = show_progress
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None

    @property
    def distributed(self) -> bool:
        return self.scheduler is not None

    def client(self):
        if self._client is None and self.scheduler is not None:
            from dask.distributed import Client, LocalCluster

            if isinstance(self.scheduler, Client):
                self._client = self.scheduler
            elif isinstance(self.scheduler, str) and _is_local(self.scheduler):
                # "local:N": N single-threaded worker processes on this machine.
                self._cluster = LocalCluster(
                    n_workers=local_workers(self.scheduler),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.scheduler)
        return self._client

    def n_workers(self) -> int:
        """Workers that can run tasks now (1 in-process)."""
        if not self.distributed:
            return 1
        return max(1, len(self.client().scheduler_info(n_workers=-1)["workers"]))

    def imap(self, fn: Callable, items: Iterable, description: str = "working") -> Iterator[TaskResult]:
        """Yield results as they complete (in completion order on Dask, in order in-process)."""
        items = list(items)
        with progress_bar(disable=not self.show_progress or not items) as bar:
            task = bar.add_task(description, total=len(items))
            if not self.distributed:
                for index, item in enumerate(items):
                    value, error = _call(fn, item)
                    bar.advance(task)
                    yield TaskResult(index, value, error)
                return
            from dask.distributed import as_completed

            client = self.client()
            futures = client.map(_call, [fn] * len(items), items, pure=False)
            position = {f.key: i for i, f in enumerate(futures)}
            for future in as_completed(futures):
                value, error = future.result()
                bar.advance(task)
                yield TaskResult(position[future.key], value, error)

    def map(self, fn: Callable, items: Iterable, description: str = "working") -> list[TaskResult]:
        """All results, in input order."""
        results = sorted(self.imap(fn, items, description), key=lambda r: r.index)
        return results

    def close(self) -> None:
        # Close only a client this executor created; a Client passed in belongs to the caller.
        if self._client is not None and isinstance(self.scheduler, str):
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


# A Dask scheduler address: [protocol://]host:port, the host a name, an IPv4 or a bracketed IPv6 address.
_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(\d{1,5})")


def _is_local(scheduler: str) -> bool:
    # Not startswith("local"): "localhost:8786" is a scheduler address.
    return scheduler == "local" or scheduler.startswith("local:")


def local_workers(scheduler: str) -> int | None:
    """N of ``local:N`` (None for ``local``: Dask's default); InputError unless N is a whole number >= 1."""
    _, _, count = scheduler.partition(":")
    if count and not (count.isdecimal() and int(count) >= 1):
        raise InputError(f"--scheduler {scheduler!r}: expected local or local:N with N >= 1 worker processes")
    return int(count) if count else None


def check_scheduler(scheduler: str | None) -> str | None:
    """``scheduler`` if specml can use it (None: in-process; ``local``, ``local:N``, or an address
    ``[tcp://]host:port``), else :class:`InputError`. Nothing is started or connected to."""
    if scheduler is None:
        return None
    if _is_local(scheduler):
        local_workers(scheduler)
        return scheduler
    address = _ADDRESS.fullmatch(scheduler)
    if address is None or not 0 < int(address.group(1)) < 65536:
        raise InputError(
            f"--scheduler {scheduler!r}: expected local, local:N or a scheduler address "
            "host:port (e.g. tcp://10.0.0.5:8786)"
        )
    return scheduler


def make_executor(scheduler: str | Any | None = None, show_progress: bool = True) -> Executor:
    """In-process executor, or a Dask one for ``tcp://host:port``, ``local:N`` (a LocalCluster
    of N single-threaded worker processes) or a ``Client``."""
    return Executor(scheduler, show_progress)
