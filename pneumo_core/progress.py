"""Progress of long work as plain event dicts, and cancellation.

Events are ``{"type": ..., "time": ..., **payload}``; ``train.py`` prints them and appends them as
JSON lines to the file the app's Retrain page follows (``jobs``). Types: ``stage`` (a step of the
run, with a ``message``), ``loading``, ``epoch_begin``, ``batch``, ``epoch_end``, ``done``, and from
``train.py`` ``cancelled`` or ``failed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
EventHandler = Callable[[Event], None]
StopCheck = Callable[[], bool]


class TrainingCancelled(RuntimeError):
    """The run was stopped on request; nothing was written to the registry."""


def emit(handler: EventHandler | None, kind: str, **payload: Any) -> None:
    if handler is not None:
        handler({"type": kind, "time": time.time(), **payload})


def check_stop(should_stop: StopCheck | None) -> None:
    """Raise ``TrainingCancelled`` if a stop was asked for."""
    if should_stop is not None and should_stop():
        raise TrainingCancelled("training was cancelled; the registry is unchanged")


def stage(handler: EventHandler | None, should_stop: StopCheck | None, message: str) -> None:
    """Start a named step of the run, unless a stop was asked for: then raise ``TrainingCancelled``.

    Every step between loading and registration goes through here, so a cancel is honoured at the
    next step boundary wherever the run is, not only during the epochs.
    """
    check_stop(should_stop)
    emit(handler, "stage", message=message)


def loading(handler: EventHandler | None, split: str) -> Callable[[int, int], None]:
    """A ``data.load_arrays`` progress callback that emits "loading" events for ``split``."""
    return lambda done, total: emit(handler, "loading", split=split, done=done, total=total)


def keras_progress(
    handler: EventHandler | None, should_stop: StopCheck | None, epochs: int, member: int = 0, members: int = 1
):
    """A Keras callback reporting member ``member`` (0-based) of ``members``; fractions and ETA span
    all members. It stops training after the current batch when ``should_stop()`` says so."""
    import keras

    where = {"member": member + 1, "members": members}

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.cancelled = False
            self.start = time.time()
            self.epoch_index = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.time()
            emit(handler, "epoch_begin", epoch=epoch + 1, epochs=epochs, **where)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            steps = self.params.get("steps") or 1
            member_fraction = (self.epoch_index + (batch + 1) / steps) / epochs
            done_fraction = (member + member_fraction) / members
            member_seconds = (time.time() - self.start) / member_fraction  # this member's projected time
            eta = member_seconds * (members - member - member_fraction)
            emit(
                handler, "batch", epoch=self.epoch_index + 1, epochs=epochs, step=batch + 1, steps=steps,
                loss=float((logs or {}).get("loss", float("nan"))), eta_s=eta, progress=done_fraction, **where,
            )  # fmt: skip
            if should_stop is not None and should_stop():
                self.cancelled = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_index = epoch + 1
            clean = {k: float(v) for k, v in (logs or {}).items()}
            clean["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            emit(
                handler, "epoch_end", epoch=epoch + 1, epochs=epochs, logs=clean,
                seconds=time.time() - self.epoch_start, **where,
            )  # fmt: skip

    return Progress()
