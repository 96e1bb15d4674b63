"""Graceful shutdown: on SIGTERM stop being ready, take no new work, answer what was admitted, exit in time.

Kubernetes (and ``docker stop``) send SIGTERM, wait a grace period, then SIGKILL. From
SIGTERM (t = 0), with ``SHUTDOWN_GRACE_S`` = G:

- t = 0: ``/readyz`` answers 503 and new photos are shed with 503 + ``Retry-After`` (set here,
  before uvicorn sees the signal); uvicorn then closes its listening socket, so new
  connections are refused, and closes idle keep-alive connections.
- photos already admitted, running or waiting, are answered as usual;
- t = ``ANSWER_BY`` x G: any still unanswered get 503 + ``Retry-After`` (the client retries on
  another replica) and running work stops at its next stage;
- t = ``FORCE_BY`` x G: uvicorn cancels what is left (a client still uploading, say), and the
  process exits;
- t = ``EXIT_BY`` x G: if it has not (a stopped photo whose current stage runs on, and which
  Python waits for at exit), it exits anyway: the orchestrator would SIGKILL it soon after.

The hook chains to the handler it replaces (uvicorn's, which starts uvicorn's own drain),
so it works under ``python -m app serve`` and ``uvicorn --factory app.main:create_app`` alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

log = logging.getLogger("app.shutdown")  # the name its log lines have always carried

ANSWER_BY = 0.8
FORCE_BY = 0.9
EXIT_BY = 0.95
EXIT_STATUS = 1  # not a clean exit: work was still running
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drainable(Protocol):
    """What the drain needs of the gate in front of the inference threads (``app.api.admission.Admission``).

    A protocol, so that this module, below the HTTP layer, does not import it.
    """

    @property
    def draining(self) -> bool: ...

    def begin_draining(self) -> None:
        """Shed every new photo; those admitted still get their answer."""

    def stop_all(self) -> None:
        """Answer every admitted photo 503 now and stop running work."""


@contextmanager
def drain_on_termination(admission: Drainable, grace_s: float) -> Iterator[None]:
    """While inside, SIGTERM or SIGINT starts the drain above, then reaches the previous handler."""
    loop = asyncio.get_running_loop()

    def started() -> None:  # on the event loop, not in the signal handler
        log.info(
            "shutting down: /readyz is 503, new photos are shed, admitted ones answered within %.1f s",
            ANSWER_BY * grace_s,
        )
        loop.call_later(ANSWER_BY * grace_s, admission.stop_all)

    def begin() -> None:
        if not admission.draining:
            admission.begin_draining()
            loop.call_soon_threadsafe(started)
            watchdog = threading.Timer(EXIT_BY * grace_s, _exit_now, args=(grace_s,))
            watchdog.daemon = True  # runs while Python waits for the inference threads at exit
            watchdog.start()

    with _on_signals(begin):
        yield


def _exit_now(grace_s: float) -> None:
    log.error("still running %.1f s after SIGTERM: exiting with work unfinished", EXIT_BY * grace_s)
    os._exit(EXIT_STATUS)


@contextmanager
def _on_signals(callback: Callable[[], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals (TestClient runs the app in another one)
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handler(sig: int, frame: FrameType | None) -> None:
        callback()
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)
        else:  # SIG_DFL or SIG_IGN: let the signal do what it did before
            signal.signal(sig, chained)
            signal.raise_signal(sig)

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, chained in previous.items():
            signal.signal(sig, chained)
