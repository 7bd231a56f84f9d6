"""Every page runs headless in Streamlit's AppTest, on its own and through the router."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHIPPED_MODELS, encode
from streamlit.testing.v1 import AppTest

from pneumo_core import api

TIMEOUT = 120


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)


@pytest.fixture()
def shipped(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setenv("PNEUMO_MODELS", str(SHIPPED_MODELS))
    monkeypatch.setenv("PNEUMO_DATA", str(data_root))


@pytest.fixture()
def no_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PNEUMO_DATA", str(tmp_path / "absent"))


def test_router_runs_every_page(use_tiny_registry: Path, no_data: None) -> None:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not app.exception
    assert "Pneumonia chest X-ray assistant" in app.title[0].value
    for name, title in (
        ("diagnose", "Diagnose"), ("evaluation", "Evaluation"), ("site", "Site check"), ("retrain", "Retrain")
    ):  # fmt: skip
        app.switch_page(f"app_pages/{name}.py").run()
        assert not app.exception, name
        assert app.title[0].value == title


def test_home_shows_model_card(use_tiny_registry: Path) -> None:
    app = page("home").run()
    assert not app.exception
    assert any("tiny test model" in m.value for m in app.markdown)


def test_home_introduces_every_page_of_the_router(use_tiny_registry: Path) -> None:
    router = (ROOT / "app.py").read_text()
    titles = [line.split('title="')[1].split('"')[0] for line in router.splitlines() if "st.Page(" in line]
    assert len(titles) == 5
    introduction = page("home").run().markdown[0].value
    assert all(f"**{title}**" in introduction for title in titles if title != "Home")


def test_diagnose_upload_verdict_and_rejection(use_tiny_registry: Path, no_data: None, normal_image: Path) -> None:
    app = page("diagnose").run()
    assert not app.exception and app.info
    photo = encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8), "PNG")
    app.get("file_uploader")[0].set_value(
        [
            ("chest.jpeg", normal_image.read_bytes(), "image/jpeg"),
            ("holiday.png", photo, "image/png"),
            ("empty.dcm", b"", "application/dicom"),
        ]
    )
    app.run()
    assert not app.exception
    subheaders = " ".join(s.value for s in app.subheader)
    assert "chest.jpeg" in subheaders and ("NORMAL" in subheaders or "PNEUMONIA" in subheaders)
    errors = " ".join(e.value for e in app.error)
    assert "Not a chest X-ray" in errors and "empty" in errors
    assert any(m.label == "Probability of pneumonia" and m.value.endswith("%") for m in app.metric)
    table = app.table[0].value
    # human headers, every column in order; the scored image first, the rejected ones last, each with
    # its own reason and no verdict
    assert list(table.columns) == list(api.WORKLIST_HEADERS.values())
    file, verdict, probability, reason = (api.WORKLIST_HEADERS[k] for k in ("file", "verdict", "probability_pneumonia_pct", "error"))  # fmt: skip
    assert table[file].iloc[0] == "chest.jpeg" and set(table[file].iloc[1:]) == {"holiday.png", "empty.dcm"}
    assert table[reason].iloc[0] == "" and table[verdict].iloc[0] in ("NORMAL", "PNEUMONIA")
    reasons = dict(zip(table[file], table[reason], strict=True))
    assert "Not a chest X" in reasons["holiday.png"] and "empty" in reasons["empty.dcm"]
    assert all(not shown for shown in table[verdict].iloc[1:])
    assert list(table[probability].iloc[1:]) == ["\\-", "\\-"]  # "-" (escaped: a table cell is Markdown), not "None"
    assert float(table[probability].iloc[0].replace("\\", "")) >= 0  # "49\\.6": escaped, as "49." starts a list


def test_opacity_slider_does_not_rerun_the_model(
    use_tiny_registry: Path, no_data: None, normal_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pneumo_core import Classifier

    calls = []
    original = Classifier.analyze
    monkeypatch.setattr(Classifier, "analyze", lambda self, image, **kw: calls.append(1) or original(self, image, **kw))
    app = page("diagnose").run()
    app.get("file_uploader")[0].set_value(("chest.jpeg", normal_image.read_bytes(), "image/jpeg"))
    app.run()
    assert len(calls) == 1
    app.slider(key="opacity_0").set_value(0.8).run()
    assert not app.exception and len(calls) == 1


def test_the_images_shown_are_encoded_once_per_image_and_opacity_not_on_every_rerun(
    use_tiny_registry: Path, no_data: None, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = []
    original = api.screen_jpegs
    monkeypatch.setattr(
        api, "screen_jpegs", lambda analysis, opacity: encoded.append(opacity) or original(analysis, opacity)
    )
    app = page("diagnose").run()
    files = sorted((data_root / "test" / "NORMAL").iterdir())[:2]
    app.get("file_uploader")[0].set_value([(p.name, p.read_bytes(), "image/jpeg") for p in files])
    app.run()
    assert encoded == [0.4, 0.4]
    app.run()  # any rerun (another upload, the sidebar) draws every image again, from what was encoded
    assert encoded == [0.4, 0.4]
    app.slider(key="opacity_0").set_value(0.8).run()
    app.slider(key="opacity_0").set_value(0.4).run()
    assert not app.exception and encoded == [0.4, 0.4, 0.8]


def test_diagnose_examples_from_dataset(shipped: None) -> None:
    app = page("diagnose").run()
    box = app.selectbox(key="example")
    box.set_value(next(o for o in box.options if o.startswith("pneumonia"))).run()
    assert not app.exception
    assert any("PNEUMONIA" in s.value or "NORMAL" in s.value for s in app.subheader)


def test_prevalence_slider_reexpresses_the_probability_not_the_verdict(shipped: None) -> None:
    app = page("diagnose").run()
    box = app.selectbox(key="example")
    box.set_value(next(o for o in box.options if o.startswith("pneumonia"))).run()

    def shown() -> tuple[str, float, float]:
        values = {m.label: float(m.value.strip("<>%")) for m in app.metric if m.label != "Reading"}
        return app.subheader[0].value, values["Probability of pneumonia"], values["Operating threshold"]

    verdict, probability, threshold = shown()
    slider = app.slider(key="prevalence")
    explained = " ".join(c.value for c in app.sidebar.caption)
    assert f"{slider.value}% is the share of pneumonia among the validation patients" in explained
    assert "verdicts stay the same" in explained
    slider.set_value(1).run()
    assert not app.exception
    verdict_low, probability_low, threshold_low = shown()
    assert verdict_low == verdict and probability_low < probability and threshold_low < threshold


def test_evaluation_dashboard_and_threshold_slider(shipped: None) -> None:
    app = page("evaluation").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) >= 4
    before = {m.label: m.value for m in app.metric}
    app.slider(key="eval_threshold").set_value(0.05).run()
    after = {m.label: m.value for m in app.metric}
    assert not app.exception
    assert float(after["Sensitivity"].rstrip("%")) >= float(before["Sensitivity"].rstrip("%"))
    assert float(after["Specificity"].rstrip("%")) < float(before["Specificity"].rstrip("%"))
    assert any(e.label.startswith("Misclassified test images at 0.050") for e in app.expander)  # follows it
    assert app.dataframe[0].value.columns[0] == "metric"  # metrics as rows: narrow enough to read whole
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    roc = next(c for c in charts if c["layout"]["title"]["text"].startswith("ROC curve"))
    assert "95% bootstrap band" in roc["layout"]["title"]["text"]
    assert [t.get("fill") for t in roc["data"]].count("toself") == 1  # one band, the one model's
    matrix = next(c for c in charts if c["layout"]["title"]["text"].startswith("Confusion matrix"))
    sensitivity = after["Sensitivity"]  # the true-pneumonia row's right cell, with its interval
    assert re.search(re.escape(sensitivity) + r" \(\d+\.\d%-\d+\.\d%\)", matrix["data"][0]["text"][1][1])


def test_evaluation_without_predictions_warns(use_tiny_registry: Path) -> None:
    app = page("evaluation").run()
    assert not app.exception and "no stored test-set predictions" in app.warning[0].value


def test_retrain_page_without_dataset(
    use_tiny_registry: Path, no_data: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PNEUMO_RUNS", str(tmp_path / "runs"))
    app = page("retrain").run()
    assert not app.exception
    assert any("needs the dataset" in i.value for i in app.info)


def fake_run(runs: Path, run_id: str, events: list[dict]) -> None:
    """A run folder as train.py leaves it (no process behind it), for the Retrain page to follow."""
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"training_config": {"epochs": 4}, "started": 1.0}))
    (folder / "events.jsonl").write_text("".join(json.dumps({"time": 1.0, **e}) + "\n" for e in events))


BATCH = {"type": "batch", "progress": 0.9, "epoch": 4, "epochs": 4, "step": 47, "steps": 47, "eta_s": 30.0}


def test_run_status_says_the_current_step_not_a_stale_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    monkeypatch.setenv("PNEUMO_RUNS", str(tmp_path))
    fake_run(tmp_path, "r1", [{"type": "stage", "message": "Training member 2 of 3"}, BATCH])
    fake_run(tmp_path, "r2", [BATCH, {"type": "stage", "message": "Calibrating on validation"}])
    training = subprocess.Popen(["sleep", "60"])  # stands for the run's process, so that it counts as running
    try:
        for run_id, message, eta in (
            ("r1", "Training member 2 of 3: epoch 4/4, step 47/47", 30.0), ("r2", "Calibrating on validation", None)
        ):  # fmt: skip
            (tmp_path / api.jobs.LOCK_FILE).write_text(f"{run_id} {training.pid}")
            status = api.jobs.run_status(run_id)
            assert (status.state, status.message, status.eta_s) == ("running", message, eta)
    finally:
        training.kill()
        training.wait()


def test_a_cancelled_run_is_a_notice_not_an_error(
    use_tiny_registry: Path, no_data: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PNEUMO_RUNS", str(tmp_path))
    events = [BATCH, {"type": "stage", "message": "Scoring the 624 test images"}]
    fake_run(tmp_path, "r1", [*events, {"type": "cancelled", "message": "training was cancelled"}])
    app = page("retrain").run()
    assert not app.exception and not app.error
    assert any(i.value.startswith("Cancelled: no model was registered") for i in app.info)


def test_upload_limit_matches_core() -> None:
    import tomllib

    from pneumo_core.imaging import MAX_UPLOAD_MB

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB


def site_zip(data_root: Path, count: int) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((data_root / "train").rglob("*.jpeg"))[:count]:
            archive.write(path, f"site-b/{path.parent.name.lower()}/{path.name}")
        archive.writestr("site-b/broken.jpeg", b"\xff\xd8\xff\xe0 truncated")
    return buffer.getvalue()


def test_site_check_page_from_a_zip(shipped: None, data_root: Path) -> None:
    app = page("site").run()
    assert not app.exception and app.info  # asks for images
    app.get("file_uploader")[0].set_value(("site-b.zip", site_zip(data_root, 60), "application/zip"))
    app.run()
    assert not app.exception
    verdicts = [*app.success, *app.error]
    assert len(verdicts) == 1 and verdicts[0].value.startswith("Site check (60 images): ")
    labels = {m.label for m in app.metric}
    assert {"p-value (appearance differs)", "Domain-classifier AUC", "Estimated pneumonia share"} <= labels
    assert any("Most atypical images" in s.value for s in app.subheader)
    left_out = app.expander[0]
    assert left_out.label == "1 file left out"
    assert list(left_out.dataframe[0].value["file"]) == ["site-b.zip/site-b/broken.jpeg"]


def test_site_check_page_says_when_too_few_images(shipped: None, data_root: Path) -> None:
    app = page("site").run()
    app.get("file_uploader")[0].set_value(("few.zip", site_zip(data_root, 5), "application/zip"))
    app.run()
    assert not app.exception and "too small to tell" in app.warning[0].value
    assert not app.metric


def test_site_check_page_from_a_server_folder_names_the_files_it_does_not_read(
    shipped: None, data_root: Path, tmp_path: Path
) -> None:
    for path in sorted((data_root / "test" / "NORMAL").iterdir())[:5]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "scan.bmp").write_bytes(b"BM")
    app = page("site").run()
    app.text_input(key="site_folder").set_value(str(tmp_path)).run()
    assert not app.exception and "too small to tell" in app.warning[0].value
    assert [c.value for c in app.caption if "scan.bmp" in c.value] == [
        api.plain(
            "Skipped 1 file not JPEG, PNG or DICOM by name (.jpg, .jpeg, .png, .dcm, .dicom or no extension): scan.bmp"
        )
    ]


def test_diagnose_runs_the_site_check_from_fifty_uploads(
    shipped: None, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the router, so the line's link to the Site check page resolves as in the app. The
    check uses what the analyses read: the network runs once per image, not twice."""
    from pneumo_core import Classifier

    read_again = []
    monkeypatch.setattr(Classifier, "read_many", lambda *a, **k: read_again.append(1) or iter(()))
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in sorted((data_root / "train").rglob("*.jpeg"))[:50]]
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    app.switch_page("app_pages/diagnose.py").run()
    app.get("file_uploader")[0].set_value(files)
    app.run()
    assert not app.exception
    assert any(i.value.startswith("Site check (50 images): ") for i in app.info) and not read_again
    assert [link.proto.page for link in app.get("page_link")] == ["site"]  # the Site check page
    app.get("file_uploader")[0].set_value(files[:49])
    app.run()
    assert not any(i.value.startswith("Site check") for i in app.info)


def test_retrain_adapts_to_a_site_from_a_zip_and_asks_before_making_it_default(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import shutil
    import zipfile

    models = tmp_path / "models"
    shutil.copytree(SHIPPED_MODELS, models)
    monkeypatch.setenv("PNEUMO_MODELS", str(models))
    monkeypatch.setenv("PNEUMO_DATA", str(tmp_path / "absent"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((data_root / "test").rglob("*.jpeg")) + sorted((data_root / "train").rglob("*.jpeg"))[:40]:
            archive.write(path, f"site-b/{path.parent.name}/{path.name}")
    app = page("retrain").run()
    app.radio(key="rt_mode").set_value("Adapt to a new site").run()
    assert not app.exception
    app.get("file_uploader")[0].set_value(("site-b.zip", buffer.getvalue(), "application/zip"))
    app.button[0].click().run()  # the form's Adapt button
    job = app.session_state["ad_job"]
    job.wait(300)
    app.run()
    assert not app.exception and job.state == "done", job.message
    assert "site-adapted, out of fold" in app.success[0].value
    table = app.dataframe[0].value
    assert list(table["images"]) == ["64", "64", "343"] and "before adapting" in table["what"].iloc[1]
    assert "validation patients, not replayed" in table["what"].iloc[2]
    promote = app.button(key="ad_promote")
    assert promote.disabled  # not without the confirmation
    app.checkbox(key="ad_sure").check().run()
    app.button(key="ad_promote").click().run()
    assert (models / "DEFAULT").read_text().strip() == job.out.name


def test_a_sessions_cache_is_bounded_by_bytes_and_holds_display_sized_images(
    use_tiny_registry: Path, no_data: None, data_root: Path, full_size_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui

    app = page("diagnose").run()
    app.get("file_uploader")[0].set_value(("full.jpeg", full_size_image.read_bytes(), "image/jpeg"))
    app.run()
    session = app.session_state["analysis_owner"]
    analysis = ui.ANALYSES.get(
        session, (api.registry.default_name(), hashlib.sha256(full_size_image.read_bytes()).hexdigest())
    )
    assert (
        max(analysis.pixels.shape)
        <= ui.DISPLAY_SIDE
        < max(analysis.prediction.facts["width"], analysis.prediction.facts["height"])
    )
    assert analysis.heatmap.dtype == np.float16 and analysis.heatmap.shape == analysis.pixels.shape[:2]
    monkeypatch.setattr(ui.ANALYSES, "per_session", analysis.nbytes + 1)
    others = sorted((data_root / "test" / "NORMAL").iterdir())[:3]
    app.get("file_uploader")[0].set_value([(p.name, p.read_bytes(), "image/jpeg") for p in others])
    app.run()
    assert not app.exception
    assert 0 < ui.ANALYSES.session_bytes(session) <= analysis.nbytes + 1  # oldest dropped first


def test_cached_analyses_are_bounded_per_session_and_in_all_and_dropped_when_idle() -> None:
    """Streamlit keeps a closed tab's session state until another session comes or goes, so the
    analyses live in a store that forgets what no one has used for a while, and a closed tab's
    analyses at once."""
    import threading

    from ui import AnalysisStore

    class Sized:
        def __init__(self, nbytes: int) -> None:
            self.nbytes = nbytes

    now = [0.0]
    store = AnalysisStore(per_session=250, total=400, idle_seconds=60, clock=lambda: now[0])
    for i in range(3):
        store.put("a", (i,), Sized(100))
    assert store.get("a", (0,)) is None and store.session_bytes("a") == 200  # over 250: the oldest went
    now[0] = 30.0
    assert store.get("a", (1,)).nbytes == 100  # used again: now the most recent
    store.put("b", (0,), Sized(150))
    store.put("b", (1,), Sized(100))  # 450 in all: the least recently used (a's 2) goes
    assert store.get("a", (2,)) is None and store.get("a", (1,)) is not None
    now[0] = 80.0
    assert store.expire() == 0  # a's 1 was used at 30, b's at 30: none idle for 60 s yet
    store.put("closed", (0,), Sized(10))
    assert store.expire(is_open=lambda session: session != "closed") == 1  # its tab closed: gone at once
    assert store.session_bytes("closed") == 0 and store.session_bytes("a") == 100
    now[0] = 95.0
    assert store.expire() == 3 and store.session_bytes("a") == store.session_bytes("b") == 0
    assert any(t.name == "analysis-expiry" and t.daemon and t.is_alive() for t in threading.enumerate())


def test_a_sessions_analyses_are_keyed_by_its_streamlit_session_and_go_when_its_tab_closes(
    use_tiny_registry: Path, no_data: None, normal_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.runtime import Runtime

    import ui

    app = page("diagnose").run()
    app.get("file_uploader")[0].set_value(("chest.jpeg", normal_image.read_bytes(), "image/jpeg"))
    app.run()
    session = app.session_state["analysis_owner"]
    assert ui.ANALYSES.session_bytes(session) > 0
    assert session.startswith("test session id/")  # Streamlit's id for the session (AppTest's), then its own
    assert ui._session_is_open(session)  # no Streamlit server here (AppTest): every session counts as open

    class Server:
        def is_active_session(self, session_id: str) -> bool:
            return session_id != "test session id"

    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: Server()))
    assert not ui._session_is_open(session) and ui._session_is_open("another session id/0")
    ui.ANALYSES.expire(ui._session_is_open)
    assert ui.ANALYSES.session_bytes(session) == 0


def test_streamlit_leaves_keras_state_alone_between_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit clears Keras after every script run unless told not to: two full garbage collections
    per rerun, and Keras' global state pulled from under a running adaptation."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    import ui  # noqa: F401  (importing it is what tells Streamlit)

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    script_runner._clean_problem_modules()
    assert cleared == []


def test_garbage_is_collected_after_every_rerun_without_visiting_the_libraries(use_tiny_registry: Path) -> None:
    """Streamlit's garbage collection after each script run stays on: waiting for Python's own
    schedule instead let the server's memory grow faster (docs/experiments.md). It stays cheap
    because loading the first model takes TensorFlow's and Keras' own objects out of collection; the
    models are still collected once dropped."""
    import gc
    import tomllib
    import weakref

    import keras

    import ui

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config.get("runner", {}).get("postScriptGC", True) is True  # Streamlit's default: on
    ui._load.clear()  # a model of its own, not one an earlier page run holds
    clf, warning = ui._load("tiny", str(use_tiny_registry))
    assert warning is None and gc.get_freeze_count() > 100_000
    tracked = {id(o) for o in gc.get_objects()}
    assert id(keras.layers.Dense) not in tracked and id(keras.Model.fit) not in tracked  # frozen: never visited
    assert id(clf.model) in tracked  # the model itself is not frozen
    ui._load.clear()
    dropped = weakref.ref(clf.model)
    del clf
    gc.collect()
    assert dropped() is None
