"""In-process generation with dynamic batching: one thread runs `sftkit.generation.generate` on whatever is
waiting, up to `batch_size` replies at a time, so concurrent requests share forward passes.

A batch holds requests for the same model and sampling settings (temperature, top_p, stop strings); their
`max_tokens` may differ (each row stops at its own). A seeded sampled request runs alone, so its seed gives
the same reply as `sftkit generate --seed`. Jobs are taken oldest first. Each new token is handed to the
job's asyncio queue as it is generated; a cancelled job (client gone, timeout) leaves the queue, or its rows
stop at the next decoding step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from sftkit.generation import Reply, generate
from sftkit.serve.catalog import ServedModel

log = logging.getLogger("sftkit.serve")
END = None  # the token queue's end marker; the job's future then holds the replies


@dataclass(eq=False)
class Job:
    """One request's generation: `n` replies to `conversation`."""

    model: str
    conversation: list[dict]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    tokens: asyncio.Queue = field(default_factory=asyncio.Queue)  # (choice, token id) ..., then END
    future: asyncio.Future | None = None
    cancelled: bool = False
    stopped_choices: set[int] = field(default_factory=set)  # choices a guardrail cut off mid-stream

    def __post_init__(self):
        self.future = self.loop.create_future()

    def key(self) -> tuple:
        """Jobs with equal keys can share a batch."""
        solo = id(self) if self.temperature > 0 and self.seed is not None else None
        return self.model, self.temperature, self.top_p, tuple(self.stop), solo

    def _call(self, function, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass

    def put_token(self, choice: int, token_id: int) -> None:
        self._call(self.tokens.put_nowait, (choice, token_id))

    def finish(self, replies: list[Reply] | None, error: BaseException | None = None) -> None:
        """Settle the future with `replies`, or `error`, or (neither) as cancelled; then end the token queue."""
        def settle():
            if not self.future.done():
                if error is not None:
                    self.future.set_exception(error)
                elif replies is None:
                    self.future.cancel()
                else:
                    self.future.set_result(replies)
            self.tokens.put_nowait(END)
        self._call(settle)


class _BatchHook:
    """`GenerationHook` for one batch: row i is choice `choices[i]` of `jobs[i]`."""

    def __init__(self, rows: list[tuple[Job, int]]):
        self.rows = rows

    def on_token(self, index: int, token_id: int) -> None:
        job, choice = self.rows[index]
        if not job.cancelled:
            job.put_token(choice, token_id)

    def cancelled(self, index: int) -> bool:
        job, choice = self.rows[index]
        return job.cancelled or choice in job.stopped_choices


class Engine:
    """The generation thread and the queue in front of it. `observe_batch(num_rows)` is called per batch and
    `observe_cancelled(num_rows)` with the rows of a batch that were stopped before they ended."""

    def __init__(self, catalog: dict[str, ServedModel], batch_size: int):
        self.catalog, self.batch_size = catalog, batch_size
        self.observe_batch = self.observe_cancelled = lambda num_rows: None
        self.generating = 0  # rows in the batch being generated now
        self._pending: deque[Job] = deque()
        self._condition = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="sftkit-generation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop taking work; the running batch finishes, waiting jobs are failed."""
        with self._condition:
            self._closing = True
            waiting, self._pending = list(self._pending), deque()
            self._condition.notify_all()
        for job in waiting:
            job.finish(None, RuntimeError("the server is shutting down"))
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet generating."""
        return len(self._pending)

    def submit(self, job: Job) -> None:
        with self._condition:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            self._pending.append(job)
            self._condition.notify()

    def cancel(self, job: Job) -> None:
        """Drop a waiting job; a generating one stops after the current decoding step."""
        job.cancelled = True
        with self._condition:
            if job in self._pending:
                self._pending.remove(job)
                job.finish(None)

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if self._closing:
                    return
                batch = self._take()
            if batch:
                self._run(batch)

    def _take(self) -> list[Job]:
        """The oldest job and the waiting jobs that can share its batch, up to `batch_size` rows."""
        head = self._pending.popleft()
        batch, num_rows = [head], head.n
        for job in list(self._pending):
            if num_rows + job.n > self.batch_size:
                continue
            if job.key() == head.key():
                self._pending.remove(job)
                batch.append(job)
                num_rows += job.n
        return batch

    def _run(self, batch: list[Job]) -> None:
        rows = [(job, choice) for job in batch for choice in range(job.n)]
        head, served = batch[0], self.catalog[batch[0].model]
        self.observe_batch(len(rows))
        self.generating = len(rows)
        try:
            with served.active() as model:
                replies = generate(model, served.tokenizer, [job.conversation for job, _ in rows],
                                   [job.max_tokens for job, _ in rows], temperature=head.temperature,
                                   top_p=head.top_p, seed=head.seed, stop=head.stop, batch_size=len(rows),
                                   hook=_BatchHook(rows))
        except Exception as exc:  # reported to each client as a 500; the thread keeps serving
            log.exception("generation failed for a batch of %d rows", len(rows))
            for job in batch:
                job.finish(None, exc)
            return
        finally:
            self.generating = 0
        self.observe_cancelled(sum(reply.finish_reason == "cancelled" for reply in replies))
        start = 0
        for job in batch:
            job.finish(replies[start:start + job.n])
            start += job.n
