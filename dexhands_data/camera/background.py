"""A camera session run in a worker thread, steps in order (OpenCV releases the GIL)."""

from __future__ import annotations

import queue
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np

from ..records import CameraTrack

if TYPE_CHECKING:
    from .vo import VOSession


class BackgroundSession:
    """Runs a :class:`VOSession` in one worker thread fed through a bounded queue (frames in order).

    ``step`` checks the frame size at once and returns; an error inside the worker is raised by
    the next ``step`` or by ``finish``. A session dropped without ``finish`` (the episode failed
    elsewhere) stops its thread when it is garbage-collected.
    """

    _STOP = None

    def __init__(self, session: "VOSession", max_pending: int = 8):
        self.session = session
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.errors: list[BaseException] = []
        # The thread holds the queue, session and error list, not ``self``, so ``self`` can be collected.
        self.thread = threading.Thread(target=_background_worker, args=(self.queue, session, self.errors),
                                       name="vo-session", daemon=True)
        self.thread.start()
        self._stopper = weakref.finalize(self, self.queue.put, self._STOP)

    def _raise(self) -> None:
        if self.errors:
            raise self.errors[0]

    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray | None = None,
             hand_valid: np.ndarray | None = None) -> None:
        self._raise()
        self.session.check_frame(image)
        kp = None if hand_keypoints_2d is None else np.array(hand_keypoints_2d, dtype=np.float64)
        valid = None if hand_valid is None else np.array(hand_valid, dtype=bool)
        self.queue.put((image, kp, valid))

    def tracked_points(self) -> np.ndarray:
        self.queue.join()
        self._raise()
        return self.session.tracked_points()

    def finish(self) -> CameraTrack:
        self._stopper()  # sends the stop marker once
        self.thread.join()
        self._raise()
        return self.session.finish()


def _background_worker(q: queue.Queue, session: "VOSession", errors: list[BaseException]) -> None:
    while True:
        item = q.get()
        try:
            if item is BackgroundSession._STOP:
                return
            if not errors:
                session.step(*item)
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)
        finally:
            q.task_done()
