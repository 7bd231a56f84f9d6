"""Streamlit glue shared by the pages: cached model loading, the model selector, the disclaimer.

The only module besides the pages that imports streamlit; ``pneumo_core`` never does. Like the
pages, it reaches the core through ``pneumo_core.api`` alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from pneumo_core import api


def _leave_keras_alone() -> None:
    """After every script run Streamlit calls ``keras.backend.clear_session()`` (for apps that build
    a model in the script) and then collects garbage. This app loads its models once per process and
    adapts models in a background thread: the clearing cost two more full garbage collections per
    rerun and could pull Keras' global state from under a running adaptation. Streamlit's after-run
    cleanup is told to leave Keras alone (it has no setting for this); its collection stays, made
    cheap by ``_freeze_libraries``."""
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = lambda: None


_leave_keras_alone()
MODEL_KEY = "model_name"
DISPLAY_SIDE = 1024
"""Images and heatmaps are kept and drawn no larger than this (the page shows them at about 700 px)."""
WORKLIST_ROWS_SHOWN = 15
"""A longer worklist scrolls inside its table."""
MAX_CACHED_BYTES = 150_000_000
"""One session's cached analyses (1-5 MB each at display size) stay under this."""
MAX_TOTAL_CACHED_BYTES = 600_000_000
"""All sessions' cached analyses together stay under this."""
IDLE_SECONDS = 30
"""An analysis unused this long is dropped (a rerun recomputes it in about 0.2 s of CPU)."""


Stored = api.Analysis | api.InputError | tuple[bytes, ...]
"""What ``AnalysisStore`` keeps: an analysis (or why there is none), or the screen images made from one."""


class AnalysisStore:
    """Analyses and their screen images kept between reruns, for every session of the process: a
    session's under ``per_session`` bytes, all under ``total`` bytes (least recently used go first),
    and none kept ``idle_seconds`` after its last use. They live here rather than in
    ``st.session_state`` because Streamlit keeps a closed tab's session state until another session
    connects or leaves, so after the last user left, their images would stay in memory indefinitely."""

    def __init__(
        self, per_session: int, total: int, idle_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_session, self.total, self.idle_seconds, self._clock = per_session, total, idle_seconds, clock
        self._entries: OrderedDict[tuple, list] = OrderedDict()  # (session, *key) -> [result, last use]
        self._lock = threading.Lock()

    def get(self, session: str, key: tuple) -> Stored | None:
        with self._lock:
            entry = self._entries.get((session, *key))
            if entry is None:
                return None
            entry[1] = self._clock()
            self._entries.move_to_end((session, *key))
            return entry[0]

    def put(self, session: str, key: tuple, result: Stored) -> None:
        with self._lock:
            self._entries[(session, *key)] = [result, self._clock()]
            self._entries.move_to_end((session, *key))
            mine = [k for k in self._entries if k[0] == session]
            while len(mine) > 1 and sum(_size(self._entries[k][0]) for k in mine) > self.per_session:
                del self._entries[mine.pop(0)]
            while len(self._entries) > 1 and sum(_size(e[0]) for e in self._entries.values()) > self.total:
                self._entries.popitem(last=False)

    def expire(self, is_open: Callable[[str], bool] = lambda session: True) -> int:
        """Drop what has not been used for ``idle_seconds``, and everything of a session that
        ``is_open`` says has ended; returns how many were dropped."""
        with self._lock:
            cutoff = self._clock() - self.idle_seconds
            stale = [k for k, (_, used) in self._entries.items() if used < cutoff or not is_open(k[0])]
            for k in stale:
                del self._entries[k]
            return len(stale)

    def session_bytes(self, session: str) -> int:
        with self._lock:
            return sum(_size(result) for (owner, *_), (result, _) in self._entries.items() if owner == session)


def _size(result: Stored) -> int:
    if isinstance(result, tuple):
        return sum(len(part) for part in result)
    return getattr(result, "nbytes", 1_000)


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the operating system (glibc keeps them for reuse otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _session_is_open(owner: str) -> bool:
    """Whether the browser tab of the Streamlit session behind ``session_owner()``'s key is still
    connected (outside a Streamlit server, as under AppTest, every session counts as open)."""
    from streamlit.runtime import Runtime

    return not Runtime.exists() or Runtime.instance().is_active_session(owner.rsplit("/", 1)[0])


def _expire_forever(store: AnalysisStore, every: float) -> None:
    while True:
        time.sleep(every)
        if store.expire(_session_is_open):
            _release_freed_memory()


ANALYSES = AnalysisStore(MAX_CACHED_BYTES, MAX_TOTAL_CACHED_BYTES, IDLE_SECONDS)
threading.Thread(target=_expire_forever, args=(ANALYSES, 10.0), daemon=True, name="analysis-expiry").start()


@functools.cache
def _freeze_libraries() -> None:
    """Leave every object there is once TensorFlow and Keras are imported (the libraries' modules,
    Streamlit's among them) out of garbage collection from now on: once per process, before the
    first model loads, so that models are still collected when dropped.

    Streamlit collects garbage after every script run, so whatever a run's reference cycles hold is
    freed as soon as the run ends. With the libraries' 410,000 objects to visit, that cost more
    server CPU than all the rest of an upload; left to Python's own schedule instead, a full
    collection comes only once about 100,000 more objects have outlived younger ones, and in a
    100-upload soak the server's memory grew half as much again (docs/experiments.md). Frozen, the
    libraries are skipped: a collection visits what the app and its models hold, in milliseconds."""
    api.import_model_libraries()
    gc.collect()
    gc.freeze()


@st.cache_resource(show_spinner="Loading model...", max_entries=4)
def _load(name: str, models_dir: str) -> tuple[api.Classifier, str | None]:
    _freeze_libraries()
    return api.Classifier.load_or_fallback(name)


def classifier(name: str | None = None) -> api.Classifier:
    """The named or selected model (loaded once per process); shows a warning if it fell back."""
    clf, warning = _load(name or selected_model(), str(api.registry.models_dir()))
    if warning:
        st.warning(warning)
    return clf


def selected_model() -> str:
    names = api.registry.model_names()
    name = st.session_state.get(MODEL_KEY)
    return name if name in names else api.registry.default_name()


def model_selector() -> None:
    """Sidebar choice of model; the default model is preselected."""
    default = api.registry.default_name()
    names = api.registry.model_names() or [default]
    current = selected_model()
    st.sidebar.selectbox(
        "Model",
        names,
        index=names.index(current) if current in names else 0,
        key=MODEL_KEY,
        format_func=lambda n: f"{n} (default)" if n == default else n,
    )


def session_owner() -> str:
    """This session's key in ``ANALYSES``: Streamlit's id for the session (so that its analyses go
    as soon as its tab is closed, ``_session_is_open``), then a random part of its own."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return st.session_state.setdefault("analysis_owner", f"{context.session_id if context else ''}/{uuid.uuid4().hex}")


def analyze_cached(
    data: bytes, clf: api.Classifier | None = None, owner: str | None = None
) -> api.Analysis | api.InputError:
    """Analyze once per (model, file content) per session; sliders do not rerun the model.

    Results live in memory only (``ANALYSES``): uploads are never written to disk. Pages hand on the
    file's bytes, not its analysis, to what outlives the script run (fragments, deferred downloads):
    those live as long as the session, the analysis only while it is used. Outside a script run
    (a deferred download) pass the classifier and ``session_owner()``.
    """
    clf = clf or classifier()
    owner = owner or session_owner()
    key = _key(clf, data)
    result = ANALYSES.get(owner, key)
    if result is None:
        try:
            result = clf.analyze(data, display_side=DISPLAY_SIDE)
        except api.InputError as error:
            result = error
        ANALYSES.put(owner, key, result)
    return result


def screen_images_cached(data: bytes, opacity: float) -> tuple[bytes, bytes]:
    """The image and its Grad-CAM overlay at ``opacity`` as JPEG for the screen, encoded once per
    analysis and opacity, not on every rerun (each rerun draws every image on the page again).
    Kept with the analyses, so they go with them. For an image ``analyze_cached`` could read."""
    clf, owner = classifier(), session_owner()
    key = (*_key(clf, data), "screen", round(opacity, 2))
    images = ANALYSES.get(owner, key)
    if images is None:
        images = api.screen_jpegs(analyze_cached(data, clf, owner), opacity)
        ANALYSES.put(owner, key, images)
    return images


def _key(clf: api.Classifier, data: bytes) -> tuple[str, str]:
    return clf.name, hashlib.sha256(data).hexdigest()


def site_check_cached(
    images: list[tuple[str, api.ImageSource]],
    analyses: list[tuple[str, api.Analysis | api.InputError]] | None = None,
) -> api.SiteCheck | str:
    """The site check of these images with the selected model, once per set of files per session;
    kept in the session (with the most atypical images, for thumbnails) for the Site page.
    With the images' ``analyses`` (in the same order), the check uses what the network read for
    them rather than reading every image again. Returns the check, or a message when the model
    cannot run one."""
    clf = classifier()
    digest = hashlib.sha256(clf.name.encode())
    for name, source in images:
        digest.update(name.encode())
        digest.update(source if isinstance(source, bytes) else str(source).encode())
    cached = st.session_state.get("site_check")
    if cached and cached["key"] == digest.hexdigest():
        return cached["check"]
    try:
        check = api.check_analyzed(clf, analyses) if analyses is not None else _read_and_check(clf, images)
    except ValueError as error:
        return str(error)
    atypical = {item["name"] for item in check.most_atypical}
    st.session_state["site_check"] = {
        "key": digest.hexdigest(),
        "check": check,
        "atypical": {name: source for name, source in images if name in atypical},
    }
    return check


def _read_and_check(clf: api.Classifier, images: list[tuple[str, api.ImageSource]]) -> api.SiteCheck:
    """``check_site`` with a progress bar while the images are read."""
    bar = st.progress(0.0, text="Reading images for the site check...")
    try:
        return api.check_site(
            clf, images, progress=lambda done, total: bar.progress(done / total, text=f"Read {done} of {total} images")
        )
    finally:
        bar.empty()


def promote(name: str, key: str) -> None:
    """Make ``name`` the default model, only once the user has ticked that they compared the figures."""
    if name == api.registry.default_name():
        return
    sure = st.checkbox(
        f"I have compared the figures and want {name} as the default model for everyone using this app",
        key=f"{key}_sure",
    )
    if st.button(f"Make {name} the default model", key=f"{key}_promote", disabled=not sure):
        api.registry.set_default(name)
        st.success(f"{name} is now the default model.")


def worklist(rows: list[dict]) -> None:
    """The worklist as a plain table with human headers: every reason wraps and reads whole (the
    interactive grid cut long ones off; the rows are already in worklist order), and an unscored file
    shows "-" for its numbers. Every cell is escaped, since a table renders Markdown (a bare "-"
    would be a list item). A long list scrolls inside the table."""
    numbers = ("probability_pneumonia_pct", "prevalence_assumed_pct")
    shown = [
        {
            header: api.plain(("-" if row[key] is None else f"{row[key]:.1f}") if key in numbers else row[key])
            for key, header in api.WORKLIST_HEADERS.items()
        }
        for row in rows
    ]
    st.table(shown, hide_index=True, height="content" if len(rows) <= WORKLIST_ROWS_SHOWN else 560)
    st.caption(
        "Pneumonia %: the calibrated probability of pneumonia. At prevalence %: the share of pneumonia it is stated "
        "for (the sidebar's setting)."
        + (
            " Files that could not be scored come last; each one's full reason is shown with it below."
            if any(row["error"] for row in rows)
            else ""
        )
    )


def disclaimer() -> None:
    st.caption(api.DISCLAIMER_LONG)
