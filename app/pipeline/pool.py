"""A small pool of non-thread-safe objects, one borrowed per thread at a time.

OpenCV's ``CascadeClassifier`` and ``cv2.dnn.Net`` keep scratch state inside the
object: two threads calling one instance at once corrupt it and can crash the
process. Inference runs in a thread pool, so each call borrows an instance of its
own. Instances are created lazily, at most ``size`` of them, and reused forever,
so loading still happens a bounded number of times per process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class ResourcePool(Generic[T]):
    """Lend out at most ``size`` instances made by ``factory``, each to one borrower at a time."""

    def __init__(self, factory: Callable[[], T], size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one instance")
        self._factory = factory
        self._size = size
        self._idle: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._created = 0
        self._lock = threading.Lock()

    @property
    def created(self) -> int:
        """How many instances exist so far."""
        return self._created

    @contextmanager
    def borrow(self) -> Iterator[T]:
        """Yield an instance no other thread is using; return it to the pool afterwards."""
        item = self._take()
        try:
            yield item
        finally:
            self._idle.put(item)

    def _take(self) -> T:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make_new = self._created < self._size
            if make_new:
                self._created += 1
        if make_new:
            try:
                return self._factory()
            except BaseException:
                with self._lock:
                    self._created -= 1
                raise
        return self._idle.get()
