"""Admission control: per worker, a photo is admitted only if it will get a thread soon.

Without it every request is accepted and queued: under a burst the queue grows until
answers take half a minute, and the time limit then turns them into 503s after the
client has waited all that time. Here a photo is answered 503 with ``Retry-After`` at
once, so a load balancer or the client can go elsewhere, when the photos ahead of it would
keep it waiting for a thread longer than ``MAX_QUEUE_WAIT_S``. The work ahead is judged
photo by photo, each by its upload's size (``app.api.photo_cost``): sixteen small photos
are a fraction of a second of work, sixteen large ones several seconds. ``MAX_QUEUE``
caps the number waiting whatever they cost (each holds its upload in memory), and is the
only bound until a photo has been timed.

A classify request takes its place when it arrives, before its body is read: reading
and parsing a photo costs the event loop more than the refusal, and under a burst those
costs queue behind each other. When the client asked to close the connection after the
answer, the rest of a shed upload is read and thrown away after the 503 is sent, and only
then is the connection closed: a client that writes its whole upload before it reads
(Python's ``urllib``) would otherwise find it closed under the upload and never see the
503. (On a connection kept alive, uvicorn reads and drops the rest itself.)

A waiting photo gives its place up as soon as its client disconnects, its time limit
passes or the shutdown deadline comes. Work already running is told to stop at its next
stage (a thread cannot be interrupted); its thread stays busy until it has.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor, Future
from contextlib import suppress
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.photo_cost import PhotoCost
from app.api.problems import ProblemError, problem_response
from app.service.metrics import Metrics

T = TypeVar("T")

#: nginx's status for "the client closed the connection before the answer": no client ever
#: sees it, but it keeps such requests apart from real answers in the access log and metrics.
CLIENT_CLOSED_REQUEST = 499
RETRY_AFTER = {"Retry-After": "1"}
#: Where the gate leaves a request's ``Place`` in its ASGI scope, for ``Admission.run``.
PLACE = "admission.place"


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


@dataclass(eq=False)
class Place:
    """One admitted photo: its upload's size, the seconds it is expected to hold a thread, and
    when it got one (``time.perf_counter()``; None while it uploads or waits)."""

    size: int | None
    cost: float
    started: float | None = None

    def remaining(self, now: float) -> float:
        """Seconds of its work still ahead, by the estimate."""
        return self.cost if self.started is None else max(0.0, self.cost - (now - self.started))


class Admission:
    """The gate in front of one worker's inference threads. Used from the event loop only."""

    def __init__(self, threads: int, max_queue: int, metrics: Metrics, max_wait_s: float) -> None:
        self.threads = threads
        self.capacity = threads + max_queue
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.cost = PhotoCost()
        # Created outside a running loop: asyncio primitives bind to the loop on first use.
        self._threads = asyncio.Semaphore(threads)
        self._stopping = asyncio.Event()
        self._places: set[Place] = set()  # admitted and not yet answered: uploading, waiting or running
        self._running = 0  # busy threads, counting stopped work until it has ended
        self.draining = False

    def take_place(self, size: int | None) -> Place:
        """Admit a photo whose upload is ``size`` bytes (None: unknown), or raise a 503 problem with
        ``Retry-After`` at once."""
        if self.draining:
            self.metrics.shed.labels("draining").inc()
            raise ProblemError(503, "the service is shutting down; retry shortly", RETRY_AFTER)
        wait = self.expected_wait()
        full = len(self._places) >= self.capacity
        if full or wait > self.max_wait_s:
            self.metrics.shed.labels("full" if full else "slow").inc()
            detail = (
                f"the service is busy ({len(self._places)} photos in flight or waiting, about {wait:.1f} s "
                "of work ahead); retry shortly"
            )
            raise ProblemError(503, detail, RETRY_AFTER)
        place = Place(size, self.cost.estimate(size))
        self._places.add(place)
        self._update_gauges()
        return place

    def expected_wait(self) -> float:
        """Seconds a photo arriving now would wait for a thread: the work ahead, shared by the threads."""
        waiting = sum(1 for p in self._places if p.started is None)
        if waiting + self._running < self.threads:
            return 0.0  # a thread is free, or will be for this photo
        now = time.perf_counter()
        return sum(p.remaining(now) for p in self._places) / self.threads

    def give_place_back(self, place: Place) -> None:
        """The photo is answered (or its client gone); giving a place back twice is harmless."""
        self._places.discard(place)
        self._update_gauges()

    async def run(
        self, request: Request, executor: Executor, work: Callable[[StopToken], T], timeout: float
    ) -> T:
        """``work(token)`` in ``executor`` once a thread is free, answered within ``timeout`` s.

        The request holds a place (``AdmissionGate``). A 503 problem with ``Retry-After`` when
        the time limit or the shutdown deadline comes first; ``ClientGone`` when the client leaves.
        """
        place: Place = request.scope[PLACE]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await self._acquire_thread(gone, deadline)
            token = StopToken()
            place.started = time.perf_counter()
            future = executor.submit(work, token)
            self._running += 1
            self._update_gauges()
            future.add_done_callback(lambda done: self._from_thread(loop, place, done))
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

    def _from_thread(self, loop: asyncio.AbstractEventLoop, place: Place, done: Future) -> None:
        """In the inference thread as its work ends: time it, and hand the thread back on the loop."""
        seconds = time.perf_counter() - (place.started or 0.0)
        # Only a photo that was answered teaches its cost: stopped work and bad photos end early.
        answered = not done.cancelled() and done.exception() is None
        loop.call_soon_threadsafe(self._thread_done, place.size, seconds if answered else None)

    def _thread_done(self, size: int | None, seconds: float | None) -> None:
        if seconds is not None:
            self.cost.learn(size, seconds)
        self._running -= 1
        self._threads.release()
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.in_flight.set(self._running)
        self.metrics.queue_depth.set(sum(1 for p in self._places if p.started is None))


class AdmissionGate:
    """ASGI middleware: a POST to one of ``paths`` takes a place before its body is read, or is shed.

    Before a connection that ends with a shed answer is closed, the request's declared body is
    read and discarded, for at most ``discard_within_s`` seconds (see the module's docstring).
    """

    def __init__(
        self, app: ASGIApp, admission: Admission, paths: Collection[str], discard_within_s: float
    ) -> None:
        self.app = app
        self.admission = admission
        self.paths = frozenset(paths)
        self.discard_within_s = discard_within_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        size = _declared_length(scope)
        try:
            place = self.admission.take_place(size)
        except ProblemError as shed:
            # The router never sees this request: label it with its route for RequestTelemetry,
            # which reads only the route's path (the gated paths have no parameters).
            scope["route"] = SimpleNamespace(path=scope["path"])
            await self._shed(shed, size, scope, receive, send)
            return
        scope[PLACE] = place

        async def send_then_free(message: Message) -> None:
            # Free the place with the answer's last part, not when the app returns: FastAPI closes
            # the uploaded file after the answer (on a thread, for a large one), and meanwhile the
            # client's next photo may arrive.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.admission.give_place_back(place)
            await send(message)

        try:
            await self.app(scope, receive, send_then_free)
        finally:
            self.admission.give_place_back(place)  # no answer sent (a client gone); a no-op otherwise

    async def _shed(
        self, shed: ProblemError, size: int | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Send the 503 now; if the connection closes after it, take in the rest of the upload first.

        On a connection kept alive, uvicorn reads and drops the rest of the body itself once the
        answer is complete. One the client asked to close (``urllib`` does) is closed as soon as
        the answer ends, under an upload still arriving: so the answer goes out whole (its body
        has a ``Content-Length``, and a client that reads while it writes has it at once), and
        only the end of the exchange waits for the upload. A body of unknown length (chunked)
        is not waited for.
        """
        response = problem_response(shed.status, shed.detail, headers=shed.headers)
        if not size or not _closes_after_answer(scope):
            await response(scope, receive, send)
            return

        async def send_unfinished(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                message = {**message, "more_body": True}
            await send(message)

        await response(scope, receive, send_unfinished)
        with suppress(TimeoutError):
            async with asyncio.timeout(self.discard_within_s):
                await _discard_body(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None (a chunked upload)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _closes_after_answer(scope: Scope) -> bool:
    """Whether the client ends the connection with this exchange: it says ``Connection: close``,
    or speaks HTTP/1.0 without asking to keep the connection alive."""
    tokens = {
        token.strip().lower()
        for name, value in scope["headers"]
        if name == b"connection"
        for token in value.split(b",")
    }
    return b"close" in tokens or (scope.get("http_version") == "1.0" and b"keep-alive" not in tokens)


async def _discard_body(receive: Receive) -> None:
    """Read the request's body to its end, or until the client disconnects, keeping none of it."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _disconnected(request: Request) -> None:
    """Return once the client has gone; the body is read by now, so nothing else can arrive."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _consume(future: asyncio.Future) -> None:
    """Take the late outcome of stopped work, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def install_admission(
    app: FastAPI, admission: Admission, paths: Collection[str], discard_within_s: float
) -> None:
    """Gate the POST routes in ``paths`` (those that classify a photo); answer ``ClientGone`` with a 499.

    A shed upload on a connection that then closes is read and discarded for at most
    ``discard_within_s`` seconds first.
    """
    app.state.admission = admission
    app.add_middleware(
        AdmissionGate, admission=app.state.admission, paths=paths, discard_within_s=discard_within_s
    )

    @app.exception_handler(ClientGone)
    async def _client_gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
