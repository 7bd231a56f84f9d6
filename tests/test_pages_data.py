"""Core helpers behind the pages: worklist ordering and CSV, PNG report, metric tables, shortcuts."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from pneumo_core import Classifier, InputError, render
from pneumo_core.classifier import Prediction
from pneumo_core.dashboard import load_test_predictions, metric_table
from pneumo_core.render import probability_percent, report_png
from pneumo_core.shortcuts import border_mask, shortcut_check, tightly_collimated
from pneumo_core.worklist import worklist_csv, worklist_rows


def prediction(probability: float) -> Prediction:
    return Prediction(probability, "PNEUMONIA" if probability >= 0.5 else "NORMAL", "x", 0.5)


def test_worklist_orders_by_probability_and_keeps_rejections() -> None:
    rows = worklist_rows([("a", prediction(0.2)), ("bad", InputError("corrupt", "damaged")), ("b", prediction(0.9))])
    assert [r["file"] for r in rows] == ["b", "a", "bad"]
    assert rows[2]["error"] == "damaged" and rows[2]["verdict"] == ""
    parsed = list(csv.DictReader(io.StringIO(worklist_csv(rows))))
    assert parsed[0]["probability_pneumonia_pct"] == "90.0"


def test_worklist_percentages_never_read_as_certainty() -> None:
    rows = worklist_rows([("sure", prediction(0.99997)), ("surer", prediction(0.999999)), ("no", prediction(1e-6))])
    assert [(r["file"], r["probability_pneumonia_pct"]) for r in rows] == [("surer", 99.9), ("sure", 99.9), ("no", 0.1)]


def test_prediction_at_another_prevalence_keeps_the_verdict() -> None:
    base = Prediction(0.8, "PNEUMONIA", "likely pneumonia", 0.7, prevalence=0.75)
    lower = base.at_prevalence(0.25)
    assert lower.probability_pneumonia == pytest.approx(0.8 * 1 / 9 / (0.8 / 9 + 0.2))  # odds 4 -> 4/9
    assert lower.probability_pneumonia >= lower.operating_threshold  # same side of the moved threshold
    assert (lower.label, lower.band, lower.prevalence) == (base.label, base.band, 0.25)
    assert worklist_rows([("a", lower)])[0]["prevalence_assumed_pct"] == 25.0
    with pytest.raises(ValueError, match="prevalence"):
        prediction(0.5).at_prevalence(0.3)  # no recorded calibration prevalence


@pytest.mark.parametrize("display_side", [None, 64])  # 64: the app's display-sized analysis (float16 heatmap)
def test_report_png_is_a_readable_image(tiny_classifier: Classifier, normal_image: Path, display_side) -> None:
    analysis = tiny_classifier.analyze(normal_image, display_side=display_side)
    png = report_png(analysis, model_name="tiny", source_name="chest.jpeg")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 500 and image.shape[1] > 1000


def test_metric_table_on_shipped_model(monkeypatch, tmp_path) -> None:
    from conftest import SHIPPED_MODELS

    from pneumo_core import registry

    monkeypatch.setenv("PNEUMO_MODELS", str(SHIPPED_MODELS))
    results = load_test_predictions(registry.default_name())
    assert results is not None and results.y_true.size == 624
    rows = metric_table({"m": results}) + metric_table({"m": results}, "validation")
    assert [r["split"] for r in rows] == ["test", "validation"]
    assert rows[0]["auc"].startswith(f"{results.test_report['auc']:.3f}")
    # v3's stored report predates ECE's bootstrap: its interval comes from the stored predictions, the same
    # bootstrap evaluate() runs (issue 18's adapt benchmark printed 0.136-0.191 for these predictions)
    assert "ece" not in results.test_report["ci95"] and rows[0]["ece"] == "0.165 (0.136-0.191)"
    assert rows[1]["ece"] == f"{results.validation_report['ece']:.3f}"  # no predictions stored: no interval


def test_border_mask_area() -> None:
    mask = border_mask(100, 100, 0.1)
    assert mask.sum() == 100 * 100 - 80 * 80
    assert not mask[50, 50] and mask[0, 0]


def test_tightly_collimated_keeps_the_centre() -> None:
    image = np.arange(200 * 100, dtype=np.uint8).reshape(200, 100)
    centre = tightly_collimated(image, 0.15)
    assert centre.shape == (140, 70) and np.array_equal(centre, image[30:170, 15:85])


def test_shortcut_check_reports_borders_and_tight_collimation(shipped_classifier, data_root: Path) -> None:
    paths = [
        *sorted((data_root / "test" / "NORMAL").iterdir())[:4],
        *sorted((data_root / "test" / "PNEUMONIA").iterdir())[:4],
    ]
    check = shortcut_check(shipped_classifier, paths, [0] * 4 + [1] * 4)
    assert check["n"] == 8 and check["tight_crop_fraction"] == 0.15
    threshold = shipped_classifier.contract.operating_threshold
    plain = [shipped_classifier.predict(p).probability_pneumonia for p in paths[:4]]
    assert check["specificity_plain"] == pytest.approx(np.mean(np.array(plain) < threshold))
    for key in ("accuracy_border_masked", "accuracy_tight_crop", "specificity_tight_crop", "auc_tight_crop"):
        assert 0.0 <= check[key] <= 1.0


def test_model_card_warns_about_cropping_only_when_the_model_leans_on_the_field_of_view() -> None:
    import json

    from conftest import SHIPPED_MODELS

    from pneumo_core.card import model_card

    metadata = json.loads((SHIPPED_MODELS / "pneumonia-cnn-v1" / "metadata.json").read_text())
    card = model_card(metadata)
    assert "specificity 65.7% -> 3.4%" in card and "Upload radiographs uncropped" in card
    check = metadata["shortcut_check"]
    check["specificity_tight_crop"] = check["specificity_plain"] - 0.02
    card = model_card(metadata)
    assert "Tight collimation" in card and "uncropped" not in card


@pytest.mark.parametrize("name", ["pneumonia-cnn-v1", "pneumonia-cnn-v3"])
def test_shipped_model_cards_are_what_their_metadata_generates(name: str) -> None:
    """Training and `shortcut_check.py --write` write the card from metadata.json; the committed card
    (what the app shows) must be what the current code writes, so regenerating it changes nothing."""
    import json

    from conftest import SHIPPED_MODELS

    from pneumo_core.card import model_card

    folder = SHIPPED_MODELS / name
    assert model_card(json.loads((folder / "metadata.json").read_text())) == (folder / "MODEL_CARD.md").read_text()


def test_model_card_names_class_weights_the_same_at_training_time_and_read_back_from_json() -> None:
    """Training writes the card from int-keyed class weights, later rewrites from metadata.json
    (string keys); both must read "NORMAL ..., PNEUMONIA ..."."""
    import json

    from conftest import SHIPPED_MODELS

    from pneumo_core.card import model_card

    metadata = json.loads((SHIPPED_MODELS / "pneumonia-cnn-v1" / "metadata.json").read_text())
    as_trained = json.loads(json.dumps(metadata))
    as_trained["data"]["class_weights"] = {int(k): v for k, v in metadata["data"]["class_weights"].items()}
    assert model_card(as_trained) == model_card(metadata)
    assert "class weights NORMAL 1.947, PNEUMONIA 0.673," in model_card(metadata)


def test_probabilities_never_read_as_certain() -> None:
    assert [probability_percent(p) for p in (0.99996, 0.9995, 0.9994, 0.5, 0.0005, 0.0001, 0.0)] == [
        ">99.9%",
        ">99.9%",
        "99.9%",
        "50.0%",
        "0.1%",
        "<0.1%",
        "<0.1%",
    ]


def test_csv_cells_never_run_as_spreadsheet_formulas(tmp_path) -> None:
    """OWASP CSV injection: a file name that starts like a formula is written with a leading quote,
    in the worklist download and in the CLI's CSV; plain names and numbers are unchanged."""
    names = ['=HYPERLINK("http://x","click").jpeg', "+1.jpeg", "-2.jpeg", "@SUM(A1).jpeg", "\tx.jpeg", "\rx.jpeg"]
    rows = worklist_rows([(name, prediction(0.3)) for name in names] + [("plain.jpeg", prediction(0.9))])
    parsed = list(csv.DictReader(io.StringIO(worklist_csv(rows))))
    assert [r["file"] for r in parsed[1:]] == [f"'{name}" for name in names]
    assert parsed[0]["file"] == "plain.jpeg" and parsed[0]["probability_pneumonia_pct"] == "90.0"


def test_plain_text_escapes_what_markdown_would_act_on() -> None:
    from pneumo_core.api import plain

    assert plain("**b** :red[x] $y$ ![i](u) <b>") == r"\*\*b\*\* \:red\[x\] \$y\$ \!\[i\]\(u\) \<b\>"
    assert [plain(t) for t in ("- a", "1. a", "# a", "a.b-c")] == [r"\- a", r"1\. a", r"\# a", "a.b-c"]
    assert plain("two\nlines") == "two lines"


# --- render: what a person reads, pinned by hand --------------------------------------------------


def test_percentages_by_hand() -> None:
    from pneumo_core.render import percent, probability_percent_value

    assert percent(0.1234) == "12.3%" and percent(0.1234, 0) == "12%" and percent(1.0) == "100.0%"
    assert [probability_percent(p) for p in (0.9995, 0.99949, 0.5, 0.0005, 0.00049)] == [
        ">99.9%", "99.9%", "50.0%", "0.1%", "<0.1%",
    ]  # fmt: skip
    assert [probability_percent_value(p) for p in (0.99997, 0.4567, 1e-6)] == [99.9, 45.7, 0.1]


def test_csv_quotes_formula_text_but_not_numbers() -> None:
    from pneumo_core.render import write_csv

    buffer = io.StringIO()
    write_csv(buffer, ["name", "value"], [{"name": "-2.jpeg", "value": -0.5}, {"name": "a=b", "value": "+x"}])
    assert buffer.getvalue().splitlines() == ["name,value", "'-2.jpeg,-0.5", "a=b,'+x"]


def test_overlay_blends_in_rgb_at_the_given_opacity() -> None:
    from pneumo_core.render import overlay

    gray = np.full((4, 6), 100, np.uint8)
    hot = np.ones((2, 3), np.float32)  # resized to the image
    np.testing.assert_array_equal(overlay(gray, hot, 0.0), np.full((4, 6, 3), 100, np.uint8))
    full = overlay(gray, hot, 1.0)
    np.testing.assert_array_equal(full[0, 0], [128, 0, 0])  # JET's hottest colour, in RGB order: dark red
    np.testing.assert_array_equal(overlay(gray, hot, 7.0), full)  # opacity is clipped to [0, 1]
    half = overlay(gray, np.zeros((4, 6), np.float32), 0.5)  # cold: JET's dark blue (0, 0, 128)
    np.testing.assert_array_equal(half[0, 0], [50, 50, 114])
    np.testing.assert_array_equal(overlay(gray, hot * 1.5, 1.0), full)  # heat above 1 is clipped, not wrapped
    np.testing.assert_array_equal(overlay(gray, hot), overlay(gray, hot, 0.4))  # the page's default opacity


def test_screen_images_are_jpegs_of_the_image_and_its_overlay_at_the_analysis_size() -> None:
    from pneumo_core.classifier import Analysis
    from pneumo_core.render import SCREEN_JPEG_QUALITY, overlay, screen_jpegs

    pixels = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    heat = np.zeros((200, 300), np.float16)  # the app keeps display-sized float16 heatmaps
    heat[:, 150:] = 1.0
    analysis = Analysis(Prediction(0.2, "NORMAL", "likely normal", 0.5), heatmap=heat, pixels=pixels)
    image, blended = screen_jpegs(analysis, 0.7)
    assert image[:2] == blended[:2] == b"\xff\xd8"  # JPEG
    gray = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
    assert gray.shape == pixels.shape and np.abs(gray.astype(int) - pixels).mean() < 2
    colour = cv2.cvtColor(cv2.imdecode(np.frombuffer(blended, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    expected = overlay(pixels, heat, 0.7)
    assert colour.shape == expected.shape and np.abs(colour.astype(int) - expected).mean() < 3  # RGB, not BGR
    assert SCREEN_JPEG_QUALITY == 90 and len(blended) < len(
        cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, 100])[1]
    )


def test_the_disclaimers_words() -> None:
    from pneumo_core.render import DISCLAIMER, DISCLAIMER_LONG

    assert DISCLAIMER == "A demo and teaching tool, not a medical device."
    assert (
        DISCLAIMER_LONG
        == "A demo and teaching tool, not a medical device. Do not use it for decisions about real patients."
    )


def test_report_lines_say_verdict_probability_threshold_prevalence_model_and_disclaimer() -> None:
    from pneumo_core.classifier import Analysis
    from pneumo_core.render import DISCLAIMER, report_lines

    p = Prediction(0.87, "PNEUMONIA", "likely pneumonia", 0.83, prevalence=0.74)
    analysis = Analysis(p, heatmap=np.zeros((10, 10), np.float32), pixels=np.zeros((10, 10), np.uint8))
    lines = report_lines(analysis, model_name="v3", source_name="x" * 80, generated="2026-12-02 10:00")
    assert lines == [
        "Verdict: PNEUMONIA   P(pneumonia) = 87.0%   (likely pneumonia)",
        "Operating threshold 83.0%   Prevalence assumed 74%   Model: v3",
        f"Image: {'x' * 60}   Generated 2026-12-02 10:00",
        "Left: image as read. Right: Grad-CAM (regions that drove the verdict; not a lesion map).",
        f"{DISCLAIMER} Not for clinical decisions.",
    ]
    unstated = Analysis(Prediction(0.2, "NORMAL", "likely normal", 0.5), analysis.heatmap, analysis.pixels)
    assert report_lines(unstated, model_name="m", source_name="a")[1] == "Operating threshold 50.0%   Model: m"
    assert re.fullmatch(
        r"Image: a   Generated \d{4}-\d\d-\d\d \d\d:\d\d", report_lines(unstated, model_name="m", source_name="a")[2]
    )


def test_report_png_lays_out_the_image_and_its_overlay_side_by_side() -> None:
    from pneumo_core.classifier import Analysis
    from pneumo_core.render import overlay

    pixels = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (128, 1))  # 2:1, fitted to 512 x 256
    heat = np.zeros((128, 256), np.float32)
    heat[:, 128:] = 1.0
    analysis = Analysis(Prediction(0.2, "NORMAL", "likely normal", 0.5), heatmap=heat, pixels=pixels)
    page = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(report_png(analysis, model_name="m", source_name="a"), np.uint8), cv2.IMREAD_COLOR),
        cv2.COLOR_BGR2RGB,
    )
    assert page.shape == (512 + 230, 2 * 512 + 60, 3)
    fitted = cv2.resize(pixels, (512, 256), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(page[20:276, 20:532], cv2.cvtColor(fitted, cv2.COLOR_GRAY2RGB))
    blended = overlay(fitted, cv2.resize(heat, (512, 256), interpolation=cv2.INTER_AREA), 0.4)
    np.testing.assert_array_equal(page[20:276, 552:1064], blended)
    assert (page[276:532] == 255).all()  # white below the panels, down to the text
    # below the panels: report_lines in black, from x = 20, 36 px apart, the verdict larger and bolder
    text = np.full((230, 2 * 512 + 60, 3), 255, np.uint8)
    styles = [(0.8, 2), (0.6, 1), (0.6, 1), (0.55, 1), (0.6, 1)]
    for index, (line, (scale, thickness)) in enumerate(
        zip(render.report_lines(analysis, model_name="m", source_name="a"), styles, strict=True)
    ):
        cv2.putText(
            text, line, (20, 60 + 36 * index), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    np.testing.assert_array_equal(page[512:], text)


def test_a_report_that_cannot_be_encoded_says_so(monkeypatch) -> None:
    from pneumo_core.classifier import Analysis

    analysis = Analysis(
        Prediction(0.2, "NORMAL", "likely normal", 0.5), np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8)
    )
    monkeypatch.setattr(render.cv2, "imencode", lambda *_: (False, None))
    with pytest.raises(RuntimeError, match=r"^PNG encoding failed$"):
        report_png(analysis, model_name="m", source_name="a")


def test_worklist_rows_by_hand() -> None:
    stated = Prediction(0.42, "NORMAL", "borderline: review", 0.5, prevalence=0.3)
    rows = worklist_rows(
        [("a.jpeg", stated), ("b.jpeg", InputError("empty", "The file is empty.")), ("c", prediction(0.7))]
    )
    assert rows == [
        {"file": "c", "verdict": "PNEUMONIA", "probability_pneumonia_pct": 70.0, "prevalence_assumed_pct": None,
         "reading": "x", "error": ""},
        {"file": "a.jpeg", "verdict": "NORMAL", "probability_pneumonia_pct": 42.0, "prevalence_assumed_pct": 30.0,
         "reading": "borderline: review", "error": ""},
        {"file": "b.jpeg", "verdict": "", "probability_pneumonia_pct": None, "prevalence_assumed_pct": None,
         "reading": "not scored", "error": "The file is empty."},
    ]  # fmt: skip
    assert worklist_csv(rows).splitlines()[0] == (
        "file,verdict,probability_pneumonia_pct,prevalence_assumed_pct,reading,error"
    )
    assert worklist_csv(rows).splitlines()[3] == "b.jpeg,,,,not scored,The file is empty."


def test_example_images_offer_the_first_test_images_of_each_class(data_root: Path, tmp_path: Path) -> None:
    from pneumo_core.worklist import example_images

    examples = example_images(data_root)
    normals = sorted((data_root / "test" / "NORMAL").iterdir())[:3]
    pneumonias = sorted((data_root / "test" / "PNEUMONIA").iterdir())[:3]
    assert examples == {
        **{f"normal: {p.name}": p for p in normals},
        **{f"pneumonia: {p.name}": p for p in pneumonias},
    }
    assert len(example_images(data_root, per_class=1)) == 2
    assert example_images(None) == {} and example_images(tmp_path) == {}


def test_the_comparison_says_which_rows_compare_like_for_like() -> None:
    from pneumo_core.api import comparison_note

    validation = [{"model": "run-1", "n": "64"}, {"model": "pneumonia-cnn-v3", "n": "686"}]
    test = [{"model": "run-1", "n": "624"}, {"model": "pneumonia-cnn-v3", "n": "624"}]
    assert comparison_note(validation, test) == (
        "Validation: each model was scored on its own validation split (run-1 on 64 images, pneumonia-cnn-v3 on "
        "686 images), so those figures do not compare like for like. Test: every model was scored on the same 624 "
        "images."
    )
    assert comparison_note(validation, [test[0], {"model": "pneumonia-cnn-v3", "n": "24"}]).endswith(
        "Test: run-1 on 624 images, pneumonia-cnn-v3 on 24 images, so not the same images either."
    )
    assert (
        comparison_note(validation[:1], test[:1])
        == "Validation: each model was scored on its own validation split (run-1 on 64 images). "
    )


def test_the_gallery_follows_the_threshold_it_is_given(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pneumo_core.dashboard import ModelResults, misclassified

    results = ModelResults(
        "m", np.array([1, 1, 0, 0]), np.array([0.52, 0.56, 0.2, 0.4]), ["a.jpeg", "b.jpeg", "c.jpeg", "d.jpeg"],
        0.83, ("NORMAL", "PNEUMONIA"), {},
    )  # fmt: skip
    seen = []
    stub = SimpleNamespace(
        analyze=lambda path: (
            seen.append(path.name)
            or SimpleNamespace(pixels=np.zeros((8, 8), np.uint8), heatmap=np.zeros((8, 8), np.float32))
        )
    )
    at_own = misclassified(results, tmp_path, stub)  # at 0.83 both pneumonias are missed, the closest last
    assert [item.caption for item in at_own] == [
        "a.jpeg: true PNEUMONIA, P(pneumonia) 52%", "b.jpeg: true PNEUMONIA, P(pneumonia) 56%",
    ]  # fmt: skip
    assert [item.caption for item in misclassified(results, tmp_path, stub, threshold=0.3)] == [
        "d.jpeg: true NORMAL, P(pneumonia) 40%"
    ]
    assert misclassified(results, tmp_path, stub, threshold=0.5) == []


def test_metrics_turned_on_their_side_keep_every_value() -> None:
    from pneumo_core.dashboard import metrics_by_row

    rows = [
        {"model": "a", "split": "test", "n": "624", "threshold": "0.830", "auc": "0.963 (0.950-0.975)",
         "accuracy": "x", "sensitivity": "x", "specificity": "x", "precision": "x", "f1": "x", "brier": "0.1",
         "ece": "0.2"},
    ]  # fmt: skip
    table = metrics_by_row(rows)
    assert [r["metric"] for r in table][:3] == ["images", "threshold", "AUC"] and len(table) == 10
    assert table[2] == {"metric": "AUC", "a (test)": "0.963 (0.950-0.975)"}


def test_training_curves_mark_where_each_member_starts() -> None:
    from pneumo_core.plots import training_curves_figure

    history = {"loss": [1, 0.8, 0.9, 0.7, 0.6], "val_auc": [0.9, 0.95, 0.9, 0.93, 0.96]}
    fig = training_curves_figure(history, member_epochs=[2, 3])
    assert [shape.x0 for shape in fig.layout.shapes] == [0.5, 2.5]
    assert [a.text for a in fig.layout.annotations] == ["member 1", "member 2"]
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # below, off the AUC axis
    single = training_curves_figure(history, member_epochs=[5])
    assert not single.layout.shapes and single.layout.xaxis.title.text == "epoch"


def test_worklist_headers_name_every_column_for_a_person() -> None:
    from pneumo_core.worklist import WORKLIST_COLUMNS, WORKLIST_HEADERS

    assert list(WORKLIST_HEADERS) == WORKLIST_COLUMNS
    assert list(WORKLIST_HEADERS.values()) == [
        "File", "Verdict", "Pneumonia %", "At prevalence %", "Reading", "Why it was not scored",
    ]  # fmt: skip
    stated = Prediction(0.5, "PNEUMONIA", "x", 0.5, prevalence=0.12345)
    assert worklist_rows([("a", stated)])[0]["prevalence_assumed_pct"] == 12.3
