"""A wall clock with an adjustable offset, so tests can move time forward."""

import datetime
import threading
import time


class SimClock:
    """Sim time = real time + offset. `advance()` moves it forward; `freeze()` stops it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen = None

    def time(self):
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self):
        return datetime.datetime.fromtimestamp(self.time(), tz=datetime.timezone.utc)

    def advance(self, days=0, hours=0, minutes=0, seconds=0):
        delta = days * 86400 + hours * 3600 + minutes * 60 + seconds
        if delta < 0:
            raise ValueError("the simulator clock only moves forward (got %r seconds)" % delta)
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta
        return self.now()

    def freeze(self):
        with self._lock:
            if self._frozen is None:
                self._frozen = time.time() + self._offset

    def unfreeze(self):
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None

    @property
    def offset(self):
        with self._lock:
            if self._frozen is not None:
                return self._frozen - time.time()
            return self._offset

    @property
    def frozen(self):
        with self._lock:
            return self._frozen is not None

    def reset(self):
        with self._lock:
            self._offset = 0.0
            self._frozen = None


def iso(ts):
    """Salesforce REST date format: 2026-11-28T15:40:00.000Z."""
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)
