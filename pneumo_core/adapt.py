"""Adapt a model to a new site from the site's own labelled X-rays, scored by patient-grouped
cross-validation.

The method: the base network stays as it is; a new head, an L2-regularised logistic regression on
the network's own embeddings (the input gate's features), is fitted to the site's images, with a
temperature and an operating threshold. So that the head keeps working on the images the base model
was made for, it also learns from "home" images replayed beside the site's: half of the base model's
validation patients (from its site reference), weighted as a share of the site's images. Everything
that is chosen is chosen inside the training part of each fold, by inner patient-grouped
cross-validation: among the regularisation and replay weights whose inner out-of-fold AUC on the
replayed home images reaches ``HOME_AUC``, the one with the lowest site log-loss (after a
temperature); the temperature on the inner out-of-fold site logits, and the threshold by the default
model's rule (the highest with sensitivity >= 97%) on the inner out-of-fold site probabilities. The
outer folds give one prediction per image from a model that never saw that patient, and the other
half of the home patients, never replayed, says how the adapted model does at home. The registered
model is then fitted on all the site's images the same way.

The adapted model is an ordinary registry model: the base network with the head as its last layer,
a contract, an input gate refitted on the site's and the reference's images, the site's images as
its site reference, and the out-of-fold predictions as its stored evaluation.
"""

from __future__ import annotations

import csv
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .contract import CLASS_NAMES, ModelContract
from .data import patient_id
from .errors import InputError
from .evaluation import choose_threshold, evaluate, fit_temperature, sigmoid, summary
from .inputs import folder_files, is_image_name, other_format_error
from .progress import EventHandler, StopCheck, check_stop, emit, stage

REGULARISATION = (0.01, 0.1, 1.0)
"""Inverse L2 strengths (scikit-learn's ``C``) the inner cross-validation chooses among."""
REPLAY_WEIGHTS = (0.0, 0.25, 1.0)
"""Total weight of the replayed home images, as a share of the site images' (each site image weighs
1), that the inner cross-validation chooses among."""
HOME_AUC = 0.99
"""The inner out-of-fold AUC on replayed home images a head must keep to be preferred. When no
candidate keeps it, the site comes first: the lowest site log-loss of all is chosen."""
TARGET_SENSITIVITY = 0.97
MIN_IMAGES = 20
MIN_PER_CLASS = 5
LEARNING_CURVE = (25, 50, 100, 200)
EVALUATION_KIND = "site-adapted, out of fold"


class SiteDataError(ValueError):
    """Site data that cannot be adapted to, with one line saying why."""


@dataclass
class LabelledImage:
    name: str
    source: Any
    label: int
    patient: str


def _label(text: str) -> int:
    value = text.strip().upper()
    if value in ("1", CLASS_NAMES[1]):
        return 1
    if value in ("0", CLASS_NAMES[0]):
        return 0
    raise SiteDataError(f"unknown label {text!r}: use {CLASS_NAMES[0]} or {CLASS_NAMES[1]} (or 0 / 1)")


def _patient(name: str) -> str:
    """The Kaggle file-name pattern where it applies, else one patient per image (the file name)."""
    found = patient_id(Path(name).name)
    return found if found != Path(name).stem else name


def from_folder(folder: Path) -> list[LabelledImage]:
    """``folder/NORMAL/...`` and ``folder/PNEUMONIA/...`` (any depth below each). A file of another
    format comes with an ``InputError`` as its source, so that the adaptation lists it as left out."""
    images = []
    for label, class_name in enumerate(CLASS_NAMES):
        class_folder = Path(folder) / class_name
        if class_folder.is_dir():
            for path in folder_files(class_folder):
                name = str(path.relative_to(folder))
                source = path if is_image_name(path.name) else other_format_error()
                images.append(LabelledImage(name, source, label, _patient(name)))
    if not images:
        raise SiteDataError(f"no images in {folder}/{CLASS_NAMES[0]} or {folder}/{CLASS_NAMES[1]}")
    return images


def from_csv(csv_file: Path) -> list[LabelledImage]:
    """Rows ``path,label[,patient]`` (a header row is allowed); relative paths are read from the CSV's
    folder. Without a patient column, the Kaggle file-name pattern, else one patient per image."""
    images = []
    with open(csv_file, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].strip().lower() in ("path", "file", ""):
                continue
            if len(row) < 2:
                raise SiteDataError(f"{csv_file}: a row needs path and label, got {row!r}")
            path = Path(row[0].strip())
            path = path if path.is_absolute() else Path(csv_file).parent / path
            patient = row[2].strip() if len(row) > 2 and row[2].strip() else _patient(row[0].strip())
            images.append(LabelledImage(row[0].strip(), path, _label(row[1]), patient))
    return images


def from_archive(entries: Sequence[tuple[str, Any]]) -> list[LabelledImage]:
    """``(path, source)`` pairs from a zip (``inputs.zip_images``) whose folders name the class:
    ``.../NORMAL/...`` or ``.../PNEUMONIA/...``; other entries are ignored. An entry that could not be
    read, or is of another format (an ``InputError``), is kept so that the adaptation lists it as
    left out."""
    images = []
    for name, source in entries:
        parts = [part.upper() for part in Path(name).parts[:-1]]
        labels = [CLASS_NAMES.index(part) for part in parts if part in CLASS_NAMES]
        if labels and (is_image_name(name) or isinstance(source, InputError)):
            images.append(LabelledImage(name, source, labels[-1], _patient(name)))
    if not images:
        raise SiteDataError(f"the archive has no {CLASS_NAMES[0]}/ or {CLASS_NAMES[1]}/ folder of images")
    return images


def check_site_data(labels: np.ndarray, patients: Sequence[str]) -> None:
    """Refuse what cannot give an honest estimate. Raises ``SiteDataError``."""
    counts = np.bincount(labels, minlength=2)
    if len(labels) < MIN_IMAGES:
        raise SiteDataError(f"too few readable images: {len(labels)}; adapting needs at least {MIN_IMAGES}")
    if counts.min() == 0:
        raise SiteDataError(f"only one class: every image is {CLASS_NAMES[int(counts.argmax())]}; both are needed")
    if counts.min() < MIN_PER_CLASS:
        raise SiteDataError(
            f"too few images of one class: {counts[0]} {CLASS_NAMES[0]}, {counts[1]} {CLASS_NAMES[1]}; "
            f"at least {MIN_PER_CLASS} of each are needed"
        )
    by_patient: dict[str, set[int]] = {}
    for patient, label in zip(patients, labels, strict=True):
        by_patient.setdefault(patient, set()).add(int(label))
    both = sorted(p for p, seen in by_patient.items() if len(seen) > 1)
    if both:
        raise SiteDataError(f"patient {both[0]} appears under both labels ({len(both)} such patients); fix the labels")


@dataclass
class Head:
    """Logistic regression on standardised embeddings, with a temperature and a threshold."""

    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    temperature: float = 1.0
    threshold: float = 0.5
    regularisation: float = 0.1
    replay_weight: float = 0.0

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return ((np.asarray(embeddings, np.float64) - self.centre) / self.scale) @ self.weights + self.bias

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(embeddings), self.temperature)


@dataclass
class Replay:
    """Home images replayed beside a site's: embeddings ``(m, D)``, labels and patient groups."""

    embeddings: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def part(self, rows: np.ndarray) -> Replay:
        return Replay(self.embeddings[rows], self.labels[rows], self.groups[rows])


def split_home(reference: Any, seed: int) -> tuple[Replay, Replay]:
    """A base model's site reference (its validation patients) halved by patient: the half replayed
    while adapting, and the half kept to score the adapted model at home."""
    home = Replay(np.asarray(reference.embeddings, np.float64), reference.labels, reference.groups)
    replayed, kept = _folds(home.labels, home.groups, 2, seed)[0]
    return home.part(replayed), home.part(kept)


def _logistic(
    x: np.ndarray, y: np.ndarray, regularisation: float, replay: Replay | None = None, replay_weight: float = 0.0
) -> Head:
    """Fit the head on the site's images, and the replayed home images at ``replay_weight`` of their
    total weight when given."""
    from sklearn.linear_model import LogisticRegression

    weights = np.ones(len(y))
    if replay is not None and replay_weight > 0:
        x, y = np.vstack([x, replay.embeddings]), np.concatenate([y, replay.labels])
        weights = np.concatenate(
            [weights, np.full(len(replay.labels), replay_weight * len(weights) / len(replay.labels))]
        )
    centre, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=regularisation, max_iter=3000).fit((x - centre) / scale, y, sample_weight=weights)
    return Head(
        centre, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]),
        regularisation=regularisation, replay_weight=replay_weight if replay is not None else 0.0,
    )  # fmt: skip


def _folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    k = max(2, min(k, len(np.unique(groups[y == 0])), len(np.unique(groups[y == 1]))))
    return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


def _out_of_fold_logits(
    x, y, groups, regularisation: float, k: int, seed: int, replay: Replay | None = None, replay_weight: float = 0.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold logits of the site's images and, with ``replay``, of the replayed home images:
    fold i holds out site fold i and home fold i, so no patient scores with a head that saw it."""
    logits = np.zeros(len(y))
    splits = _folds(y, groups, k, seed)
    if replay is None:
        for train, held_out in splits:
            logits[held_out] = _logistic(x[train], y[train], regularisation).logits(x[held_out])
        return logits, None
    home_logits = np.zeros(len(replay.labels))
    home_splits = _folds(replay.labels, replay.groups, len(splits), seed)
    for (train, held_out), (home_train, home_held_out) in zip(splits, itertools.cycle(home_splits)):
        head = _logistic(x[train], y[train], regularisation, replay.part(home_train), replay_weight)
        logits[held_out] = head.logits(x[held_out])
        home_logits[home_held_out] = head.logits(replay.embeddings[home_held_out])
    return logits, home_logits


def fit_head(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, replay: Replay | None = None, inner_folds: int = 5,
    seed: int = 0, regularisation: Sequence[float] = REGULARISATION, replay_weights: Sequence[float] = REPLAY_WEIGHTS,
) -> Head:  # fmt: skip
    """Choose the regularisation and replay weight by inner grouped CV (see the module's docstring),
    then fit on all of ``x`` (and ``replay``); temperature and threshold come from the chosen
    candidate's inner out-of-fold site logits."""
    from sklearn.metrics import log_loss, roc_auc_score

    best = None
    for strength in regularisation:
        for weight in replay_weights if replay is not None else (0.0,):
            logits, home_logits = _out_of_fold_logits(x, y, groups, strength, inner_folds, seed, replay, weight)
            temperature = fit_temperature(y, logits)
            loss = log_loss(y, np.clip(sigmoid(logits, temperature), 1e-7, 1 - 1e-7), labels=[0, 1])
            home_auc = roc_auc_score(replay.labels, home_logits) if replay is not None else 1.0
            rank = (home_auc < HOME_AUC, loss)  # heads that keep HOME_AUC at home first, then by site log-loss
            if best is None or rank < best[0]:
                best = (rank, strength, weight, logits, temperature)
    _, strength, weight, logits, temperature = best
    threshold, _ = choose_threshold(y, sigmoid(logits, temperature), target_sensitivity=TARGET_SENSITIVITY)
    head = _logistic(x, y, strength, replay, weight)
    head.temperature, head.threshold = temperature, threshold
    return head


@dataclass
class CrossValidation:
    """One out-of-fold probability and threshold per image, the report, and the learning curve."""

    probabilities: np.ndarray
    thresholds: np.ndarray
    fold: np.ndarray
    regularisation: list[float]
    replay_weight: list[float]
    report: dict[str, Any]
    learning_curve: list[dict[str, Any]] = field(default_factory=list)


def _subsample(rng: np.random.Generator, y: np.ndarray, n: int) -> np.ndarray:
    """A stratified random subset of ``n`` indices, at least ``MIN_PER_CLASS`` of each class."""
    chosen = []
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        take = min(members.size, max(MIN_PER_CLASS, round(n * members.size / y.size)))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen))


def cross_validate(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, replay: Replay | None = None, folds: int = 5,
    seed: int = 0, on_event: EventHandler | None = None, should_stop: StopCheck | None = None,
) -> CrossValidation:  # fmt: skip
    """Patient-grouped K-fold estimate of adapting to these images, with a learning curve."""
    splits = _folds(y, groups, folds, seed)
    probabilities, thresholds, fold = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), int)
    strengths, replay_weights = [], []
    sizes = [n for n in LEARNING_CURVE if n < len(y) * (1 - 1 / len(splits))]
    curve: dict[int, tuple[np.ndarray, np.ndarray]] = {n: (np.full(len(y), np.nan), np.zeros(len(y))) for n in sizes}
    rng = np.random.default_rng(seed)
    for index, (train, held_out) in enumerate(splits):
        check_stop(should_stop)
        emit(on_event, "fold", fold=index + 1, folds=len(splits))
        head = fit_head(x[train], y[train], groups[train], replay=replay, seed=seed + index + 1)
        probabilities[held_out] = head.probabilities(x[held_out])
        thresholds[held_out], fold[held_out] = head.threshold, index
        strengths.append(head.regularisation)
        replay_weights.append(head.replay_weight)
        for n in sizes:
            part = train[_subsample(rng, y[train], n)]
            small = fit_head(
                x[part], y[part], groups[part], replay=replay, seed=seed + index + 1,
                regularisation=[head.regularisation], replay_weights=[head.replay_weight],
            )  # fmt: skip
            curve[n][0][held_out] = small.probabilities(x[held_out])
            curve[n][1][held_out] = small.threshold
    report = evaluate(y, probabilities, threshold=thresholds, seed=seed)
    points = []
    for n, (p, t) in curve.items():
        at = summary(evaluate(y, p, threshold=t, n_resamples=200, seed=seed))
        points.append({"images": n, **{k: at[k] for k in ("auc", "accuracy", "sensitivity", "specificity", "ece")}})
    at = summary(report)
    points.append({"images": round(len(y) * (1 - 1 / len(splits))), "all": True,
                   **{k: at[k] for k in ("auc", "accuracy", "sensitivity", "specificity", "ece")}})  # fmt: skip
    return CrossValidation(probabilities, thresholds, fold, strengths, replay_weights, report, points)


def build_adapted_network(base_model: Any, contract: ModelContract, head: Head) -> Any:
    """The base network with the head as its output: the embedding (crop of the black frame and
    spatial means, exactly as ``Network.embed``) feeding one dense unit holding the head."""
    import keras
    from keras import layers

    from .imaging import frame_box

    parts = []
    for index, name in enumerate(contract.feature_layers):
        output = base_model.get_layer(name).output
        if len(output.shape) == 4:
            height, width = int(output.shape[1]), int(output.shape[2])
            top, bottom, left, right = frame_box(contract.frame_scale, height, width)
            output = layers.Cropping2D(((top, height - bottom), (left, width - right)), name=f"site_crop_{index}")(
                output
            )
            output = layers.GlobalAveragePooling2D(name=f"site_mean_{index}")(output)
        parts.append(output)
    embedding = layers.Concatenate(name="site_embedding")(parts) if len(parts) > 1 else parts[0]
    logit = layers.Dense(1, name="site_logit")(embedding)
    model = keras.Model(base_model.inputs, logit, name=f"{base_model.name}_site")
    kernel = (head.weights / head.scale)[:, None]
    bias = np.array([head.bias - float(np.sum(head.weights * head.centre / head.scale))])
    model.get_layer("site_logit").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def _refit_gate(site: np.ndarray, reference: np.ndarray | None, sizes: list[int], seed: int) -> Any:
    """The input gate for the adapted model, from the site's and the base model's validation images:
    fitted on a random half, cut-offs from the other half, as training fits on training images and
    sets cut-offs on validation ones (distances to the data a gate was fitted on run short)."""
    from .gate import FeatureGate

    pooled = site if reference is None else np.vstack([site, reference])
    order = np.random.default_rng(seed).permutation(len(pooled))
    return FeatureGate.fit(pooled[order[::2]], pooled[order[1::2]], sizes)


@dataclass
class AdaptResult:
    path: Path
    metadata: dict[str, Any]
    rejected: list[tuple[str, str]]


def adapt(
    base: Any,
    images: Sequence[LabelledImage],
    out: Path,
    *,
    folds: int = 5,
    seed: int = 0,
    source: str = "",
    on_event: EventHandler | None = None,
    should_stop: StopCheck | None = None,
) -> AdaptResult:
    """Cross-validate, fit and register an adapted copy of ``base`` (a ``Classifier``) at ``out``.

    Raises ``SiteDataError`` for data that cannot be adapted to, ``TrainingCancelled`` if stopped.
    """
    from .card import adapted_model_card
    from .gate import GATE_FILE
    from .site import REFERENCE_FILE, SiteReference, embed

    started = time.time()
    stage(on_event, should_stop, f"Reading {len(images)} site images")
    embedded = embed(
        base, [(image.name, image.source) for image in images],
        progress=lambda done, total: emit(on_event, "loading", split="site", done=done, total=total),
    )  # fmt: skip
    by_name = {image.name: image for image in images}
    kept = [by_name[name] for name in embedded.names]
    y = np.array([image.label for image in kept], np.int64)
    patients = [image.patient for image in kept]
    check_site_data(y, patients)
    groups = np.unique(patients, return_inverse=True)[1]
    x = embedded.embeddings.astype(np.float64)

    before_probabilities = sigmoid(embedded.logits, base.contract.temperature)
    before = evaluate(y, before_probabilities, threshold=base.contract.operating_threshold, seed=seed)
    reference = SiteReference.load(base.path / REFERENCE_FILE)
    replay, kept_home = split_home(reference, seed) if reference is not None else (None, None)
    stage(on_event, should_stop, f"Cross-validating on {len(y)} images of {groups.max() + 1} patients")
    cv = cross_validate(
        x, y, groups, replay=replay, folds=folds, seed=seed, on_event=on_event, should_stop=should_stop
    )  # fmt: skip
    stage(on_event, should_stop, "Fitting the adapted model on every site image")
    head = fit_head(x, y, groups, replay=replay, seed=seed)

    home = None
    if kept_home is not None:  # the base model's validation patients never replayed: does it still work at home?
        home = summary(
            evaluate(
                kept_home.labels, head.probabilities(kept_home.embeddings), threshold=head.threshold,
                n_resamples=300, seed=seed,
            )
        )  # fmt: skip

    contract = base.contract.with_calibration(
        operating_threshold=head.threshold,
        temperature=head.temperature,
        calibration_prevalence=round(float(y.mean()), 4),
    )
    model = build_adapted_network(base.model, base.contract, head)
    gate = _refit_gate(x, reference.embeddings if reference is not None else None, base.network.feature_sizes, seed)
    site_reference = SiteReference(x, y, cv.probabilities, groups) if SiteReference.enough(y, groups) else None
    predictions = [
        {"path": image.name, "label": int(image.label), "probability_pneumonia": round(float(p), 6)}
        for image, p in zip(kept, cv.probabilities, strict=True)
    ]
    counts = np.bincount(y, minlength=2)
    metadata = {
        "name": Path(out).name,
        "created_unix": time.time(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "contract": contract.to_dict(),
        "threshold_method": f"highest threshold with sensitivity >= {TARGET_SENSITIVITY:.2f} on inner out-of-fold predictions",
        "evaluation_kind": EVALUATION_KIND,
        "adaptation": {
            "base_model": base.name,
            "method": "logistic-regression head on the base network's embeddings, fitted on the site's images "
            "and half of the base model's validation patients replayed beside them; regularisation, replay "
            f"weight, temperature and threshold chosen inside each fold by inner patient-grouped "
            f"cross-validation (the lowest site log-loss among heads keeping an AUC of {HOME_AUC} on the "
            "replayed images)"
            if replay is not None
            else "logistic-regression head on the base network's embeddings; regularisation, temperature "
            "and threshold chosen inside each fold by inner patient-grouped cross-validation",
            "source": source,
            "images": len(y),
            "normal": int(counts[0]),
            "pneumonia": int(counts[1]),
            "patients": int(groups.max() + 1),
            "rejected": [{"name": n, "reason": r} for n, r in embedded.rejected],
            "folds": int(cv.fold.max() + 1),
            "seed": seed,
            "regularisation_per_fold": cv.regularisation,
            "regularisation": head.regularisation,
            "replayed_home_images": len(replay.labels) if replay is not None else 0,
            "replay_weight_per_fold": cv.replay_weight,
            "replay_weight": head.replay_weight,
            "learning_curve": cv.learning_curve,
            "before": summary(before),
            "home": home,
            "seconds": round(time.time() - started, 1),
        },
        "base": {"name": base.name, "test": summary(base.metadata["test"]) if base.metadata.get("test") else None},
        "training_config": base.metadata.get("training_config"),
        "test": cv.report,
        "validation": None,
        "feature_gate": {"layers": list(contract.feature_layers), "thresholds": gate.thresholds},
    }
    writers: dict[str, Callable[[Path], None]] = {registry.MODEL_FILE: model.save, GATE_FILE: gate.save}
    if site_reference is not None:
        writers[REFERENCE_FILE] = site_reference.save
    stage(on_event, should_stop, "Registering the adapted model")
    path = registry.save_model_folder(
        Path(out), writers, metadata, predictions, adapted_model_card(metadata),
        before_commit=lambda: check_stop(should_stop),
    )  # fmt: skip
    emit(on_event, "done", path=str(path), test=summary(cv.report))
    return AdaptResult(path, metadata, embedded.rejected)


def read_site(folder: Path | None = None, csv_file: Path | None = None) -> list[LabelledImage]:
    """The labelled images of a site: a CSV of ``path,label[,patient]`` when given, else the folder's
    ``NORMAL/`` and ``PNEUMONIA/``. Raises ``SiteDataError``."""
    if csv_file is not None:
        return from_csv(csv_file)
    if folder is None or not Path(folder).is_dir():
        raise SiteDataError(f"no folder {folder}")
    return from_folder(folder)


__all__ = [
    "AdaptJob",
    "AdaptResult", "CrossValidation", "Head", "LabelledImage", "Replay", "SiteDataError", "adapt",
    "build_adapted_network", "check_site_data", "cross_validate", "fit_head", "from_archive", "from_csv",
    "from_folder", "read_site", "split_home",
]  # fmt: skip


class AdaptJob:
    """An adaptation running in a thread of the process that started it (the app's server): the
    site's images stay in memory, progress is read with ``status()``, ``cancel()`` stops it at the
    next fold or step, and only a finished job registers a model."""

    def __init__(self, base: Any, images: Sequence[LabelledImage], out: Path, *, folds: int = 5, source: str = ""):
        import threading

        self.out = Path(out)
        self.state = "running"  # then "done", "cancelled" or "failed"
        self.progress = 0.0
        self.message = "starting"
        self.result: AdaptResult | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(base, list(images), folds, source), name=f"adapt-{self.out.name}", daemon=True
        )
        self._thread.start()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "loading":
            self.progress = 0.3 * event["done"] / max(1, event["total"])
            self.message = f"reading site images {event['done']}/{event['total']}"
        elif kind == "fold":
            self.progress = 0.3 + 0.6 * (event["fold"] - 1) / event["folds"]
            self.message = f"cross-validating: fold {event['fold']} of {event['folds']}"
        elif kind == "stage":
            self.message = event["message"].lower()

    def _run(self, base: Any, images: list[LabelledImage], folds: int, source: str) -> None:
        from .progress import TrainingCancelled

        try:
            self.result = adapt(
                base,
                images,
                self.out,
                folds=folds,
                source=source,
                on_event=self._on_event,
                should_stop=self._stop.is_set,
            )
            self.state, self.progress, self.message = "done", 1.0, "finished"
        except TrainingCancelled:
            self.state, self.message = "cancelled", "cancelled: no model was registered"
        except SiteDataError as error:
            self.state, self.message = "failed", str(error)
        except Exception as error:  # reported on the page; the app goes on
            self.state, self.message = "failed", f"{type(error).__name__}: {error}"

    def cancel(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
