"""How many events are due at a target rate, without ever falling far behind."""

from __future__ import annotations


class Pacer:
    """If the consumer cannot keep up (backpressure), at most a second's worth of
    events is owed: the pacer does not burst to make up for a long stall.
    """

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._start = now
        self._sent = 0

    def restart(self, rate: float, now: float) -> None:
        self.rate = rate
        self._start = now
        self._sent = 0

    def due(self, now: float) -> int:
        """Events owed by `now`: one at once, then one every 1/rate seconds."""
        owed = (now - self._start) * self.rate + 1 - self._sent
        if owed > self.rate:
            self._start = now - (self._sent + self.rate - 1) / self.rate
            owed = self.rate
        return int(owed)

    def sent(self, count: int) -> None:
        self._sent += count

    def wait(self, now: float) -> float:
        """Seconds until the next event is due."""
        return self._sent / self.rate - (now - self._start)
