"""Keep recently queried students loaded, for the async MCP server.

Loading takes seconds and generation longer, so both run in worker threads and the event loop
keeps answering other requests. Concurrent requests for a model that is still loading wait for
that one load (single flight) instead of loading it again. Generation is serialised per model
by `LoadedStudent.lock`, taken inside `generate_answers`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import anyio

from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.student.generate import Answer, generate_answers
from nanodistill.student.load import LoadedStudent, load_student

StudentKey = tuple[str, str | None]


@dataclass
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    student: LoadedStudent | None = None
    error: Exception | None = None


class ModelCache:
    """LRU of loaded students keyed by (base_model, adapter_path); `loads` counts completed loads."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise NanodistillError(f"model cache size (NANODISTILL_MODEL_CACHE) must be at least 1; got {size}.")
        self.size = size
        self.loads = 0
        self._models: OrderedDict[StudentKey, LoadedStudent] = OrderedDict()
        self._flights: dict[StudentKey, _Flight] = {}

    def keys(self) -> list[StudentKey]:
        """Loaded keys, least recently used first."""
        return list(self._models)

    async def get(self, base_model: str, adapter_path: str | None) -> tuple[LoadedStudent, bool]:
        """The loaded student and whether it was already loaded when asked."""
        key = (base_model, adapter_path)
        cached = self._models.get(key)
        if cached is not None:
            self._models.move_to_end(key)
            return cached, True
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.student is not None
            return flight.student, False
        return await self._load(key), False

    async def _load(self, key: StudentKey) -> LoadedStudent:
        flight = self._flights[key] = _Flight()
        try:
            # Shielded: the thread runs to the end anyway, so a cancelled request still leaves
            # the model cached for the next one, and waiters are never handed its cancellation.
            with anyio.CancelScope(shield=True):
                student = await anyio.to_thread.run_sync(load_student, *key)
            flight.student = student
            self.loads += 1
            self._models[key] = student
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return student
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()

    def evict(self, key: StudentKey) -> bool:
        """Forget one student (e.g. its model was deleted); True when it was loaded."""
        return self._models.pop(key, None) is not None

    def clear(self) -> None:
        self._models.clear()


async def generate_off_loop(
    student: LoadedStudent,
    prompts: Sequence[str],
    *,
    instruction: str,
    reasoning: ReasoningMode,
    max_tokens: int,
    temperature: float,
) -> list[Answer]:
    """`generate_answers` in a worker thread, so the event loop stays responsive meanwhile."""
    call = partial(
        generate_answers,
        student,
        prompts,
        instruction=instruction,
        reasoning=reasoning,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    return await anyio.to_thread.run_sync(call)
