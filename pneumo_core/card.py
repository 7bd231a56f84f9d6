"""The model card: a Markdown page generated from a model's metadata (no number typed by hand)."""

from __future__ import annotations

from typing import Any

from .config import ZOOM_IN, ZOOM_OUT
from .contract import CLASS_NAMES
from .render import DISCLAIMER, count, percent


def _pct(value: float | None) -> str:
    return "n/a" if value is None else percent(value)


_METRICS = (
    ("auc", "AUC", lambda v: f"{v:.3f}"),
    ("accuracy", "Accuracy", _pct),
    ("sensitivity", "Sensitivity", _pct),
    ("specificity", "Specificity", _pct),
    ("precision", "Precision (PPV)", _pct),
    ("f1", "F1", lambda v: f"{v:.3f}"),
)


def _value_rows(report: dict[str, Any], metrics: tuple = _METRICS) -> list[str]:
    """``| Metric | value | 95% CI |`` rows of ``metrics`` (key, label, format)."""
    ci = report.get("ci95", {})
    rows = []
    for key, label, fmt in metrics:
        low_high = ci.get(key)
        interval = f"{fmt(low_high[0])} - {fmt(low_high[1])}" if low_high else ""
        rows.append(f"| {label} | {fmt(report[key])} | {interval} |")
    return rows


def _ece_row(report: dict[str, Any], label: str) -> str:
    """The ECE row, with its 95% CI where the report has one (reports bootstrap it since 2026-12)."""
    ece = report.get("ci95", {}).get("ece")
    interval = f" {ece[0]:.3f} - {ece[1]:.3f} " if ece else " "
    return f"| {label} | {report['ece']:.3f} |{interval}|"


def _metric_rows(report: dict[str, Any]) -> list[str]:
    rows = _value_rows(report)
    rows.append(f"| Brier score | {report['brier']:.3f} | |")
    rows.append(_ece_row(report, "Expected calibration error (10 bins)"))
    own = report.get("ece_at_own_prevalence")
    if own:
        rows.append(
            f"| ECE with probabilities re-expressed for this split's own prevalence ({_pct(own['prevalence'])}) "
            f"| {own['ece']:.3f} | |"
        )
    return rows


def _report_section(title: str, report: dict[str, Any] | None, note: str) -> list[str]:
    if not report:
        return [f"## {title}", "", "Not available (no such split was found when training).", ""]
    c = report["confusion"]
    return [
        f"## {title}",
        "",
        note,
        "",
        f"n = {report['n']} ({report['n_positive']} pneumonia), threshold {report['threshold']:.3f}.",
        "",
        "| Metric | Value | 95% CI (bootstrap) |",
        "| --- | --- | --- |",
        *_metric_rows(report),
        "",
        f"Confusion matrix: TN {c['tn']}, FP {c['fp']}, FN {c['fn']}, TP {c['tp']}.",
        "",
        *_reliability_rows(report.get("calibration")),
    ]


def _reliability_rows(curve: dict[str, list] | None) -> list[str]:
    """The reliability curve as a table: per probability bin, the mean prediction and the observed share."""
    if not curve or not curve.get("count"):
        return []
    rows = [
        "Reliability (10 equal-width probability bins; empty bins left out):",
        "",
        "| Mean predicted | Observed pneumonia share | Images |",
        "| --- | --- | --- |",
    ]
    for predicted, observed, images in zip(curve["predicted"], curve["observed"], curve["count"], strict=True):
        if images:
            rows.append(f"| {_pct(predicted)} | {_pct(observed)} | {images} |")
    return [*rows, ""]


def _augmentation(config: dict[str, Any]) -> str:
    if not config["augment"]:
        return "off"
    return f"on (rotation, zoom {ZOOM_IN:.0%} in to {ZOOM_OUT:.0%} out, shift, contrast, brightness; no flips)"


def _architecture(config: dict[str, Any]) -> str:
    single = f"`{config['arch']}` (width {config['width']})"
    members = config.get("members", 1)
    if members == 1:
        return single
    seeds = ", ".join(str(config["seed"] + i) for i in range(members))
    return (
        f"ensemble of {members} {single} networks trained one after the other (seeds {seeds}), merged into "
        "one model whose logit is the mean of theirs"
    )


def _class_weights(weights: dict) -> str:
    """``class weights NORMAL 1.947, PNEUMONIA 0.673`` (the keys are strings once read back from JSON)."""
    return "class weights " + ", ".join(
        f"{CLASS_NAMES[int(label)]} {weight:.3f}" for label, weight in sorted(weights.items())
    )


def _epochs_run(metadata: dict[str, Any]) -> str:
    per_member = metadata.get("member_epochs", [])
    return f"{' + '.join(map(str, per_member))}" if len(per_member) > 1 else str(metadata["epochs_run"])


def _calibration_lines(contract: dict[str, Any], calibration: dict[str, Any] | None) -> list[str]:
    scale = contract.get("frame_scale", 1.0)
    lines = [f"- Calibration: temperature {contract['temperature']:.3f} fitted on validation (log-loss)."]
    if contract.get("calibration_prevalence"):
        lines.append(
            f"- Probabilities are calibrated for the validation split's prevalence of pneumonia "
            f"({_pct(contract['calibration_prevalence'])}). The Diagnose page re-expresses them, and the threshold "
            "with them, for the prevalence a user sets (Bayes' rule); verdicts do not change."
        )
    if calibration:
        scores = ", ".join(f"{k}: {v:.4f}" for k, v in calibration["log_loss_by_frame_scale"].items())
        lines.append(
            f"- Framing: the normalized image is shrunk to {100 * scale:.0f}% of the input, centred in a black "
            "frame. Training augmentation (zoom and shift, black fill) shows the model such frames, so the "
            f"scale was chosen on validation by calibrated log-loss ({scores})."
        )
    return lines


def _gate_lines(gate: dict[str, Any] | None) -> list[str]:
    if not gate:
        return []
    return [
        f"- Input gate: DICOM modality/body part, colour, blank and aspect-ratio rules, then a Mahalanobis "
        f"distance per feature layer ({', '.join(gate['layers'])}) to the training images; each cut-off is 1.25x "
        "the 99.5th percentile of validation radiographs. Rejection rates: `python benchmarks/bench_gate.py`.",
    ]


def _shortcut_section(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return []
    band = f"{100 * check['border_fraction']:.0f}%"
    return [
        "## Shortcut check (test set)",
        "",
        f"Border band: the outer {band} of each side ({100 * check['border_area_share']:.0f}% of the image area), where "
        "burned-in text and laterality markers sit. Measured by `python benchmarks/shortcut_check.py`.",
        "",
        f"- Share of Grad-CAM mass in the border band: mean {100 * check['gradcam_border_mass_mean']:.1f}%, "
        f"median {100 * check['gradcam_border_mass_median']:.1f}% (n = {check['n']}).",
        f"- Accuracy {_pct(check['accuracy_plain'])} -> {_pct(check['accuracy_border_masked'])} and AUC "
        f"{check['auc_plain']:.3f} -> {check['auc_border_masked']:.3f} with the border band blacked out.",
        *_tight_crop_line(check),
        "",
    ]


def _tight_crop_line(check: dict[str, Any]) -> list[str]:
    if "accuracy_tight_crop" not in check:
        return []
    cut = f"{100 * check['tight_crop_fraction']:.0f}%"
    line = (
        f"- Tight collimation (each image cut by {cut} on every side, its centre enlarged to fill the input): "
        f"accuracy {_pct(check['accuracy_plain'])} -> {_pct(check['accuracy_tight_crop'])}, specificity "
        f"{_pct(check['specificity_plain'])} -> {_pct(check['specificity_tight_crop'])}, AUC "
        f"{check['auc_plain']:.3f} -> {check['auc_tight_crop']:.3f}. A model that reads the chest should not care "
        "how much of the neck and abdomen the radiograph shows."
    )
    if check["specificity_plain"] - check["specificity_tight_crop"] > 0.10:
        line += " This one does: it has learned that a tight field of view goes with pneumonia. Upload radiographs uncropped."
    return [line]


def _code_lines(code: dict[str, Any] | None) -> list[str]:
    if not code:
        return []
    changes = " with local changes to the code" if code["modified"] else ""
    return [f"Trained by commit `{code['commit'][:10]}`{changes}.", ""]


def _seed_spread(spread: dict[str, Any] | None) -> str:
    if not spread:
        return ", which has not been measured for this configuration yet."
    text = f": {spread['summary']} ({spread['command']})."
    if spread.get("adapted"):  # what a site that adapts the model to its own images would see
        text += (
            f" Each adapted to a site's own images: {spread['adapted']['summary']} ({spread['adapted']['command']})."
        )
    return text


def _site_check_section(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    alarms = figures["false_alarms"]
    plain = {key: value for key, value in alarms.items() if key.isdigit()}
    mixed = {key: value for key, value in alarms.items() if not key.isdigit()}
    return [
        "## Site check",
        "",
        "`scripts/pneumo check-site DIR` (and the app's Site page) tells from unlabelled images whether a site's "
        "X-rays look like the ones this model learned from. It compares the model's own embeddings of the batch "
        "with those of the validation split (patients the model did not fit, shipped as `site_reference.npz`): "
        "the batch's normal and pneumonia means (each image counted toward a class with its probability of it) "
        "against the validation split's, so that a site that only sees more or less pneumonia is not flagged "
        "(10 principal components, a Hotelling test per class with variances counted over patients, "
        "Bonferroni over the two, p < 0.05); it says which class's images differ most. It also estimates the site's share of pneumonia by EM on "
        "the calibrated probabilities, gives a domain-classifier AUC as the size of the difference, and lists "
        "the most atypical images. Below 20 images it says the batch is too small to tell.",
        "",
        f"Measured by `{figures['command']}` ({figures['splits']} random splits of the validation patients "
        "into reference and control):",
        "",
        "- False alarms on in-distribution batches: "
        + ", ".join(f"{_pct(v)} at {k}" for k, v in plain.items())
        + "; resampled to other class mixes: "
        + ", ".join(f"{_pct(v)} at {k}" for k, v in mixed.items())
        + ". Batches of 400 leave a smaller reference (35% of the patients) than the shipped one.",
        "- Detection of the official test set (another acquisition period): "
        + ", ".join(f"{_pct(v)} of batches of {k}" for k, v in figures["detection"].items())
        + ".",
        "- Estimated prevalence on in-distribution batches of 200, mean absolute error: "
        + ", ".join(f"{100 * v:.1f} points at {k}" for k, v in figures["prevalence_error_200"].items())
        + f". 600 images from disk take {figures['seconds_600']:.0f} s.",
        "- Limits: the estimate of the share of pneumonia assumes the images look like the reference; on a "
        "shifted site it is biased upwards when normal images drift toward pneumonia (docs/benchmarks.md). The "
        "test assumes "
        "a batch's images cluster by patient as the validation split's do. 'Looks like the training data' "
        "means no difference was found, not that verdicts are safe: check a labelled sample.",
        "",
    ]


def _size(report: dict[str, Any] | None) -> str:
    return f" ({report['n']} images)" if report else ""


def model_card(metadata: dict[str, Any]) -> str:
    contract = metadata["contract"]
    config = metadata["training_config"]
    data = metadata["data"]
    machine = metadata["machine"]
    minutes = metadata["total_seconds"] / 60

    def split_line(name: str, summary: dict[str, Any] | None) -> str:
        if not summary:
            return f"- {name}: none"
        return f"- {name}: {summary['n']} images ({summary['normal']} normal, {summary['pneumonia']} pneumonia), {summary['patients']} patients"

    lines = [
        f"# Model card: {metadata['name']}",
        "",
        f"**{DISCLAIMER}** It has not been validated for clinical use.",
        "",
        "## Intended use and limits",
        "",
        "- Input: one frontal (PA/AP) chest radiograph. Trained only on *pediatric* patients aged 1-5 "
        "from one hospital (Guangzhou Women and Children's Medical Center, Kermany et al. 2018).",
        "- Output: probability of pneumonia (bacterial or viral, not distinguished) and a verdict at a "
        "fixed operating threshold; a Grad-CAM heatmap of the regions that drove the verdict.",
        "- Not for adults, lateral views, other findings (effusion, nodules, COVID-19 specifically) or "
        "any decision about a real patient. Heatmaps show what the model used, not where disease is.",
        "- Known weakness of this dataset: train and test differ in acquisition and prevalence; normal "
        "images from other sources tend to drift toward 'pneumonia'.",
        "",
        "## Data",
        "",
        f"Source folder: `{data['source']}` (Kaggle / Mendeley chest_xray layout).",
        "",
        split_line("Training (patient-grouped split of train/)", data["train"]),
        split_line("Validation (held-out patients of train/)", data["validation"]),
        split_line("Test (official test/, only reported)", data["test"]),
        "",
        "## Model",
        "",
        f"- Architecture: {_architecture(config)}, {metadata['parameters']:,} parameters, "
        "trained from scratch (no ImageNet weights).",
        f"- Input: {contract['input_size']} x {contract['input_size']} grayscale, resized without keeping the "
        f"aspect ratio (Pillow bicubic), intensity normalization `{contract['normalization']}`.",
        f"- Training: Adam lr {config['learning_rate']} (halved when validation loss stalls for 2 epochs), batch "
        f"{config['batch_size']}, up to {config['epochs']} epochs{' per member' if config.get('members', 1) > 1 else ''} "
        f"({_epochs_run(metadata)} run, early stopping on validation loss, patience "
        f"{config['early_stopping_patience']}), label smoothing {config['label_smoothing']}, "
        f"{_class_weights(data['class_weights'])}, augmentation {_augmentation(config)}, seed {config['seed']}.",
        *_calibration_lines(contract, metadata.get("calibration")),
        f"- Operating threshold: {contract['operating_threshold']:.3f}, chosen by {metadata['threshold_method']}. "
        f"Probabilities within {contract['borderline_margin']:.2f} of it are shown as 'borderline: review'.",
        *_gate_lines(metadata.get("feature_gate")),
        f"- Training time: {minutes:.1f} min on {machine['cpu_count']} CPU cores ({machine.get('cpu') or machine['processor']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}).",
        "",
        *_report_section(
            "Validation",
            metadata.get("validation"),
            "Held-out training patients. Optimistic: framing, temperature and threshold were fitted here.",
        ),
        *_report_section(
            "Test",
            metadata.get("test"),
            f"The official test set{_size(metadata.get('test'))}, scored at the frozen threshold after training "
            "(or recalibration). Nothing was tuned on it.",
        ),
        *_shortcut_section(metadata.get("shortcut_check")),
        *_site_check_section(metadata.get("site_check")),
        "## Reproduce",
        "",
        "With the dataset where the project looks for it (`$PNEUMO_DATA`, else `data/chest_xray`), from the "
        "project folder:",
        "",
        "```",
        f"scripts/pneumo train --config models/{metadata['name']}/metadata.json \\",
        f"    --out models/{metadata['name']}",
        f".venv/bin/python benchmarks/shortcut_check.py --model {metadata['name']} --write",
        *(
            [f".venv/bin/python benchmarks/site_check.py --model {metadata['name']} --write"]
            if metadata.get("site_check")
            else []
        ),
        "```",
        "",
        *_code_lines(metadata.get("code")),
        "Training is deterministic on one machine: seeds are fixed and TensorFlow's op determinism is on, so "
        "the same command on the same CPU type, thread count and TensorFlow build gives the same weights and "
        "figures (a test checks this on a small run). Another CPU type or thread count adds floating-point "
        "numbers in another order, and the run lands elsewhere within the recipe's seed spread"
        f"{_seed_spread(metadata.get('seed_spread'))}",
        "",
    ]
    return "\n".join(lines)


def _summary_rows(report: dict[str, Any] | None) -> list[str]:
    """The headline rows (AUC, accuracy, sensitivity, specificity, ECE) of a report or its summary."""
    if not report:
        return ["| (not available) | | |"]
    return [*_value_rows(report, _METRICS[:4]), _ece_row(report, "Expected calibration error")]


def card_for(metadata: dict[str, Any]) -> str:
    """The card of any model folder's metadata: a site-adapted model's (``adapted_model_card``) or a
    trained one's (``model_card``)."""
    return adapted_model_card(metadata) if "adaptation" in metadata else model_card(metadata)


def adapted_model_card(metadata: dict[str, Any]) -> str:
    """The card of a site-adapted model (``adapt.adapt``): site data, method, out-of-fold figures,
    learning curve, the base model before adaptation, and the base model's own test figures."""
    adaptation = metadata["adaptation"]
    contract = metadata["contract"]
    curve = adaptation["learning_curve"]
    lines = [
        f"# Model card: {metadata['name']}",
        "",
        f"**{DISCLAIMER}** It has not been validated for clinical use.",
        "",
        f"A copy of `{adaptation['base_model']}` adapted to one site's own labelled X-rays. Its figures below are "
        f"**{metadata['evaluation_kind']}**: each image was scored by a model fitted without that patient.",
        "",
        "## Site data",
        "",
        f"- {adaptation['images']} images ({adaptation['normal']} normal, {adaptation['pneumonia']} pneumonia) of "
        f"{adaptation['patients']} patients, from `{adaptation['source'] or 'an upload'}`; "
        f"{count(len(adaptation['rejected']), 'file')} left out as unreadable or not radiographs.",
        "- Labels: as the site supplied them (folder names or a CSV); patients from the file names where they "
        "follow the Kaggle pattern, from the CSV's patient column, else one patient per image.",
        "",
        "## Method",
        "",
        f"- {adaptation['method']}.",
        f"- Inverse regularisation chosen: {adaptation['regularisation']} (per outer fold: "
        f"{', '.join(str(c) for c in adaptation['regularisation_per_fold'])}); "
        + (
            f"replay weight {adaptation['replay_weight']} on {adaptation['replayed_home_images']} home images (per "
            f"outer fold: {', '.join(str(w) for w in adaptation['replay_weight_per_fold'])}); "
            if adaptation.get("replay_weight_per_fold")
            else "no home images replayed; "
        )
        + f"temperature "
        f"{contract['temperature']:.3f}; operating threshold {contract['operating_threshold']:.3f} "
        f"({metadata['threshold_method']}).",
        f"- Probabilities are calibrated for this site's share of pneumonia ({_pct(contract['calibration_prevalence'])}).",
        "- The input gate is refitted on the site's and the base model's validation images; the site check "
        "compares new images with this site's.",
        "",
        f"## Site figures ({metadata['evaluation_kind']}, {adaptation['folds']}-fold, grouped by patient)",
        "",
        "| Metric | Value | 95% CI (bootstrap) |",
        "| --- | --- | --- |",
        *_summary_rows(metadata["test"]),
        "",
        "Learning curve (the same procedure on a stratified subset of each fold's training part, scored on the "
        "same held-out folds):",
        "",
        "| Site images used | AUC | Accuracy | Sensitivity | Specificity |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {p['images']}{' (all)' if p.get('all') else ''} | {p['auc']:.3f} | {_pct(p['accuracy'])} | "
            f"{_pct(p['sensitivity'])} | {_pct(p['specificity'])} |"
            for p in curve
        ],
        "",
        f"## Before: `{adaptation['base_model']}` on the same site images",
        "",
        "| Metric | Value | 95% CI (bootstrap) |",
        "| --- | --- | --- |",
        *_summary_rows(adaptation["before"]),
        "",
        "## At home: the base model's validation patients that were not replayed (neither model fitted them)",
        "",
        "| Metric | Value | 95% CI (bootstrap) |",
        "| --- | --- | --- |",
        *_summary_rows(adaptation.get("home")),
        "",
        "## Limits",
        "",
        "- The figures hold for images like this site's, from the period and machines the labelled images came "
        "from; check new batches with the site check.",
        "- Cross-validation estimates a model fitted on the other folds; the registered model is fitted on all "
        "the site's images the same way.",
        "",
        f"## The base model's official test figures (`{metadata['base']['name']}`, no site data)",
        "",
        "| Metric | Value | 95% CI (bootstrap) |",
        "| --- | --- | --- |",
        *_summary_rows(metadata["base"].get("test")),
        "",
        "## Reproduce",
        "",
        "```",
        f"scripts/pneumo adapt SITE_FOLDER --model {adaptation['base_model']} --folds {adaptation['folds']} "
        f"--out models/{metadata['name']}",
        "```",
        "",
    ]
    return "\n".join(lines)
