"""How long a photo will hold an inference thread, judged from its upload's size before it is read.

A photo's cost grows with its size: decoding and the detector's search scale with its pixels,
and large uploads are large photos, so one average for every photo misjudges most of them
(docs/load.md compares the estimates on the shared photos). Each size class (a power of two
of bytes) keeps a moving average of what its recent photos took; a photo is judged by its own
class, or by the nearest class that has been seen.
"""

from __future__ import annotations

#: Weight of the newest photo in its class's average: follows a change of photos or of load
#: within a few answers, and shrugs off one odd photo.
WEIGHT = 0.2


class PhotoCost:
    """Moving averages of seconds per photo, by size class. Used from the event loop only."""

    def __init__(self) -> None:
        self._seconds: dict[int, float] = {}  # size class -> moving average

    @staticmethod
    def size_class(size: int) -> int:
        """Uploads within a factor of two of each other share a class."""
        return max(size, 1).bit_length()

    def estimate(self, size: int | None) -> float:
        """Seconds a photo of ``size`` bytes is expected to take: 0 until a photo has been timed.

        An upload of unknown size (a chunked body) is judged as the dearest class seen.
        """
        if not self._seconds:
            return 0.0
        if size is None:
            return max(self._seconds.values())
        wanted = self.size_class(size)
        nearest = min(self._seconds, key=lambda known: (abs(known - wanted), -known))
        return self._seconds[nearest]

    def learn(self, size: int | None, seconds: float) -> None:
        """A photo of ``size`` bytes took ``seconds``; an upload of unknown size teaches nothing."""
        if size is None:
            return
        known = self.size_class(size)
        previous = self._seconds.get(known)
        self._seconds[known] = seconds if previous is None else (1 - WEIGHT) * previous + WEIGHT * seconds
