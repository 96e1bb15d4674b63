"""Admission control: a bounded number of photos in flight and waiting, per worker.

Without it every request is accepted and queued: under a burst the queue grows until
answers take half a minute, and the time limit then turns them into 503s after the
client has waited all that time. Here a worker holds at most ``INFERENCE_THREADS``
photos in flight plus ``MAX_QUEUE`` waiting; the next one is answered 503 with
``Retry-After`` at once, so a load balancer or the client can go elsewhere.

A fixed queue length is the wrong bound when photos differ: sixteen one-face photos are
answered in half a second, sixteen group photos in several. So a photo is also shed at
once when the photos ahead of it would keep it waiting for a thread longer than
``MAX_QUEUE_WAIT_S``, judged by how long recent photos held a thread (a moving average).

A classify request takes its place when it arrives, before its body is read: reading
and parsing a photo costs the event loop more than the refusal, and under a burst those
costs queue behind each other. A waiting photo gives its place up as soon as its client
disconnects, its time limit passes or the shutdown deadline comes. Work already running
is told to stop at its next stage (a thread cannot be interrupted); its thread stays
busy until it has.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor
from types import SimpleNamespace
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import ProblemError, problem_response
from app.service.metrics import Metrics

T = TypeVar("T")

#: nginx's status for "the client closed the connection before the answer": no client ever
#: sees it, but it keeps such requests apart from real answers in the access log and metrics.
CLIENT_CLOSED_REQUEST = 499
RETRY_AFTER = {"Retry-After": "1"}


class ClientGone(Exception):
    """The client disconnected while its photo waited or ran: there is no one to answer."""


class Stopped(Exception):
    """Raised in the inference thread at a stage boundary once nobody waits for the answer."""


class StopToken:
    """Set from the event loop, checked by the work in its thread between stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped


class Admission:
    """The gate in front of one worker's inference threads. Used from the event loop only."""

    def __init__(self, threads: int, max_queue: int, metrics: Metrics, max_wait_s: float = 0.5) -> None:
        self.threads = threads
        self.capacity = threads + max_queue
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        #: Moving average of the seconds a photo holds a thread; 0 until the first is done.
        self.service_s = 0.0
        # Created outside a running loop: asyncio primitives bind to the loop on first use.
        self._threads = asyncio.Semaphore(threads)
        self._stopping = asyncio.Event()
        self._places = 0  # requests admitted and not yet answered: uploading, waiting or running
        self._running = 0  # busy threads, counting stopped work until it has ended
        self.draining = False

    def take_place(self) -> None:
        """Admit one more photo, or raise a 503 problem with ``Retry-After`` at once."""
        if self.draining:
            self.metrics.shed.labels("draining").inc()
            raise ProblemError(503, "the service is shutting down; retry shortly", RETRY_AFTER)
        wait = self.expected_wait()
        if self._places >= self.capacity or wait > self.max_wait_s:
            self.metrics.shed.labels("full" if self._places >= self.capacity else "slow").inc()
            detail = (
                f"the service is busy ({self._places} photos in flight or waiting, about {wait:.1f} s "
                "of work ahead); retry shortly"
            )
            raise ProblemError(503, detail, RETRY_AFTER)
        self._places += 1
        self._update_gauges()

    def expected_wait(self) -> float:
        """Seconds a photo arriving now would wait for a thread: the photos ahead, by the average."""
        ahead = self._places - self.threads + 1  # this photo's place in the queue, if it joined
        return 0.0 if ahead <= 0 else math.ceil(ahead / self.threads) * self.service_s

    def give_place_back(self) -> None:
        self._places -= 1
        self._update_gauges()

    async def run(
        self, request: Request, executor: Executor, work: Callable[[StopToken], T], timeout: float
    ) -> T:
        """``work(token)`` in ``executor`` once a thread is free, answered within ``timeout`` s.

        The request holds a place (``AdmissionGate``). A 503 problem with ``Retry-After`` when
        the time limit or the shutdown deadline comes first; ``ClientGone`` when the client leaves.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await self._acquire_thread(gone, deadline)
            token = StopToken()
            started = time.perf_counter()
            future = executor.submit(work, token)
            self._running += 1
            self._update_gauges()
            future.add_done_callback(
                lambda _: loop.call_soon_threadsafe(self._thread_done, time.perf_counter() - started)
            )
            return await self._answer(asyncio.wrap_future(future), gone, deadline, token)
        finally:
            gone.cancel()

    def begin_draining(self) -> None:
        """Shutdown has begun: shed every new photo; those admitted still get their answer."""
        self.draining = True

    def stop_all(self) -> None:
        """The shutdown deadline: answer every admitted photo 503 now and stop running work."""
        self.draining = True
        self._stopping.set()

    async def _acquire_thread(self, gone: asyncio.Future[None], deadline: float) -> None:
        """Wait for a free thread unless the client leaves, the time limit passes or shutdown comes."""
        slot = asyncio.ensure_future(self._threads.acquire())
        await self._first_of(slot, gone, deadline)
        if not slot.done():
            slot.cancel()  # a cancelled acquire() hands on a thread it was granted meanwhile
        elif not gone.done() and not self._stopping.is_set():
            return
        else:
            self._threads.release()  # granted at the same moment as the reason to give up
        raise self._give_up(gone, "waiting", "no inference thread was free within the time limit")

    async def _answer(
        self, result: asyncio.Future[T], gone: asyncio.Future[None], deadline: float, token: StopToken
    ) -> T:
        await self._first_of(result, gone, deadline)
        if result.done():
            return result.result()
        token.stop()  # the thread ends at its next stage, and only then is free again
        result.add_done_callback(_consume)
        raise self._give_up(gone, "running", "the image took too long to process")

    async def _first_of(self, awaited: asyncio.Future, gone: asyncio.Future[None], deadline: float) -> None:
        """Return when ``awaited`` or ``gone`` is done, the shutdown deadline comes or ``deadline`` passes."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            timeout = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait({awaited, gone, stopping}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            stopping.cancel()

    def _give_up(self, gone: asyncio.Future[None], stage: str, timeout_detail: str) -> Exception:
        error: Exception
        if gone.done():
            reason, error = "client_gone", ClientGone()
        elif self._stopping.is_set():
            reason = "shutdown"
            error = ProblemError(503, "the service is shutting down; retry shortly", RETRY_AFTER)
        else:
            reason, error = "timeout", ProblemError(503, timeout_detail, RETRY_AFTER)
        self.metrics.dropped.labels(reason, stage).inc()
        return error

    def _thread_done(self, seconds: float) -> None:
        # Weight 0.2: follows a change of photos within a few answers, shrugs off one odd photo.
        self.service_s = seconds if self.service_s == 0 else 0.8 * self.service_s + 0.2 * seconds
        self._running -= 1
        self._threads.release()
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.in_flight.set(self._running)
        self.metrics.queue_depth.set(max(0, self._places - self._running))


class AdmissionGate:
    """ASGI middleware: a POST to one of ``paths`` takes a place before its body is read, or is shed."""

    def __init__(self, app: ASGIApp, admission: Admission, paths: Collection[str]) -> None:
        self.app = app
        self.admission = admission
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        try:
            self.admission.take_place()
        except ProblemError as shed:
            # The router never sees this request: label it with its route for RequestTelemetry,
            # which reads only the route's path (the gated paths have no parameters).
            scope["route"] = SimpleNamespace(path=scope["path"])
            await problem_response(shed.status, shed.detail, headers=shed.headers)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.give_place_back()


async def _disconnected(request: Request) -> None:
    """Return once the client has gone; the body is read by now, so nothing else can arrive."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _consume(future: asyncio.Future) -> None:
    """Take the late outcome of stopped work, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def install_admission(app: FastAPI, admission: Admission, paths: Collection[str]) -> None:
    """Gate the POST routes in ``paths`` (those that classify a photo); answer ``ClientGone`` with a 499."""
    app.state.admission = admission
    app.add_middleware(AdmissionGate, admission=app.state.admission, paths=paths)

    @app.exception_handler(ClientGone)
    async def _client_gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
