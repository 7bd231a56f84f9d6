"""Site check: do a site's unlabelled X-rays look like the images the model learned from?

The model's own embeddings (``Network.outputs``: the input gate's features) are compared with a
reference that ships in the model folder: the validation split, patients the model did not fit,
with their labels and calibrated probabilities (``site_reference.npz``).

- Prevalence: EM re-estimation of the class prior from the calibrated probabilities (Saerens,
  Latinne & Decaestecker 2002), 95% CI by bootstrap over images.
- Shift: the batch's class-conditional means against the reference's, in its first 10 principal
  components. Each image counts toward the normal and the pneumonia mean with its probability of
  being each, restated for the batch's estimated prevalence; a site that only sees more or less
  pneumonia keeps the same images per class (label shift), so the class mix alone cannot raise the
  statistic. Each class gets a Hotelling T^2 with the covariance of the batch's mean (the reference
  reweighted to the batch's class mix) plus the reference's own sampling error, referred to an F
  distribution whose denominator counts the reference's patients of that class (its covariance is
  estimated); the batch differs when the smaller of the two p-values, doubled (Bonferroni), is below
  5%. Variances count patients, not images: several images of one patient are alike.
- Effect: a cross-validated domain classifier (logistic regression on the same projected features,
  the reference reweighted to the batch's estimated class mix); its AUC is 0.5 when the batch cannot
  be told from the reference, with a 95% bootstrap CI.
- Atypicality: each image's Mahalanobis distance to the nearer class of the reference.

Below ``MIN_IMAGES`` the answer is "too small to tell".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .errors import InputError
from .evaluation import shift_prevalence

REFERENCE_FILE = "site_reference.npz"
MIN_IMAGES = 20
CHECK_WITH_DIAGNOSE_FROM = 50
"""Uploads on the Diagnose page from which the site check runs beside the worklist."""
COMPONENTS = 10
ALPHA = 0.05
ATYPICAL_SHOWN = 10
MIN_PER_CLASS = 5
"""A class is compared only when the batch holds at least this many images of it (soft counts)."""

LOOKS_ALIKE = "looks like the training data"
DIFFERS = "differs: expect more false alarms or misses; check a labelled sample, or adapt the model to this site"
TOO_SMALL = f"too small to tell: check at least {MIN_IMAGES} images"


@dataclass
class SiteReference:
    """What a model ships for site checks: embeddings ``(m, D)``, labels ``(m,)`` (1 = pneumonia),
    calibrated probabilities ``(m,)`` and patient groups ``(m,)`` (integer codes, no identifiers) of
    images the model did not fit (its validation split). Without groups each image is a patient."""

    embeddings: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, np.float32)
        self.labels = np.asarray(self.labels, np.int64)
        self.probabilities = np.asarray(self.probabilities, np.float64)
        if self.groups is None:
            self.groups = np.arange(len(self.labels))
        self.groups = np.unique(np.asarray(self.groups), return_inverse=True)[1].astype(np.int64)
        if not len(self.embeddings) == len(self.labels) == len(self.probabilities) == len(self.groups):
            raise ValueError("embeddings, labels, probabilities and groups must have one row per image")
        if not self.enough(self.labels, self.groups):
            raise ValueError(f"a site reference needs more than {COMPONENTS + 1} patients of each class")

    @staticmethod
    def enough(labels: np.ndarray, groups: np.ndarray | None = None) -> bool:
        """Whether a validation split is large enough to be a reference: a covariance per class, from
        more patients than components (each image its own patient without ``groups``)."""
        labels = np.asarray(labels, np.int64)
        groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
        return all(np.unique(groups[labels == label]).size > COMPONENTS + 1 for label in (0, 1))

    @property
    def prevalence(self) -> float:
        return float(self.labels.mean())

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, embeddings=self.embeddings, labels=self.labels, probabilities=self.probabilities, groups=self.groups
        )

    @classmethod
    def load(cls, path: Path) -> SiteReference | None:
        if not Path(path).exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["embeddings"], data["labels"], data["probabilities"], data["groups"])


def estimate_prevalence(probabilities: np.ndarray, calibrated_for: float, iterations: int = 200) -> float:
    """The share of pneumonia a batch's calibrated probabilities imply (Saerens et al. 2002 EM).

    ``calibrated_for`` is the prevalence the probabilities are calibrated for; each step restates
    them for the current estimate by Bayes' rule and takes their mean.
    """
    p = np.clip(np.asarray(probabilities, np.float64), 1e-9, 1 - 1e-9)
    prevalence = calibrated_for
    for _ in range(iterations):
        positive = p * prevalence / calibrated_for
        negative = (1 - p) * (1 - prevalence) / (1 - calibrated_for)
        updated = float(np.mean(positive / (positive + negative)))
        if abs(updated - prevalence) < 1e-8:
            break
        prevalence = float(np.clip(updated, 1e-6, 1 - 1e-6))
    return prevalence


def prevalence_interval(
    probabilities: np.ndarray, calibrated_for: float, *, n_resamples: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``estimate_prevalence`` (resampling images)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(probabilities)
    draws = [estimate_prevalence(p[rng.integers(0, p.size, p.size)], calibrated_for) for _ in range(n_resamples)]
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


class ShiftTest:
    """The class-mix corrected comparison of a batch's embeddings with a ``SiteReference`` whose
    probabilities are calibrated for ``calibrated_for`` (default: the reference's own prevalence)."""

    def __init__(
        self, reference: SiteReference, calibrated_for: float | None = None, components: int = COMPONENTS
    ) -> None:
        self.reference = reference
        self.calibrated_for = reference.prevalence if calibrated_for is None else calibrated_for
        x = reference.embeddings.astype(np.float64)
        self._centre, self._scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        standardized = (x - self._centre) / self._scale
        self._axes = np.linalg.svd(standardized - standardized.mean(axis=0), full_matrices=False)[2][:components]
        self._z = z = standardized @ self._axes.T
        y = reference.labels
        self._counts = (int((y == 0).sum()), int((y == 1).sum()))
        self._patients = tuple(int(np.unique(reference.groups[y == label]).size) for label in (0, 1))
        self._means = (z[y == 0].mean(axis=0), z[y == 1].mean(axis=0))
        self._covariances = (np.cov(z[y == 0].T), np.cov(z[y == 1].T))
        # The reference's soft class means and their covariance, counted over patients (images of one
        # patient are alike); each class's design effect (that covariance over the plain one) scales
        # the batch's, whose patients are unknown.
        self._conditional_means, influence = _conditional_means(
            z, shift_prevalence(reference.probabilities, self.calibrated_for, reference.prevalence)
        )
        sums = np.zeros((reference.groups.max() + 1, influence.shape[1]))
        np.add.at(sums, reference.groups, influence)
        self._reference_covariance = sums.T @ sums / len(z) ** 2
        plain = influence.T @ influence / len(z) ** 2
        self._design_effects = [
            max(1.0, float(np.trace(self._reference_covariance[b, b]) / np.trace(plain[b, b])))
            for b in _blocks(components)
        ]
        pooled = sum((n - 1) * c for n, c in zip(self._counts, self._covariances, strict=True)) / (
            sum(self._counts) - 2
        )
        values, vectors = np.linalg.eigh(pooled)
        self._whiten = vectors @ np.diag(values**-0.5) @ vectors.T
        between = (self._means[1] - self._means[0]) @ self._whiten
        self.class_axis = between / np.linalg.norm(between)
        self._project_out = np.eye(components) - np.outer(self.class_axis, self.class_axis)
        self._reference_whitened = self.whitened(reference.embeddings)
        self.reference_atypicality = self.atypicality(reference.embeddings)

    def components(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, D)`` embeddings -> ``(N, k)`` principal components of the reference."""
        return ((np.asarray(embeddings, np.float64) - self._centre) / self._scale) @ self._axes.T

    def whitened(self, embeddings: np.ndarray) -> np.ndarray:
        """Coordinates relative to the reference's normal-class mean, whitened by the pooled
        within-class covariance: the space the statistic and the picture use."""
        return (self.components(embeddings) - self._means[0]) @ self._whiten

    def statistic(
        self, embeddings: np.ndarray, probabilities: np.ndarray, prevalence: float
    ) -> tuple[float, tuple[float, float], np.ndarray]:
        """``(p-value, (p normal, p pneumonia), deviation)`` for a batch at an estimated
        ``prevalence``: whether the images read as normal, or as pneumonia, differ from the
        reference's. The deviation (the batch mean's, class axis projected out, whitened) orients
        the picture. A class the batch holds fewer than ``MIN_PER_CLASS`` images of is not tested."""
        z = self.components(embeddings)
        responsibilities = shift_prevalence(probabilities, self.calibrated_for, prevalence)
        means, _ = _conditional_means(z, responsibilities)
        # What the batch's means would vary by if its images were the reference's at its class mix.
        y, share = self.reference.labels, self.reference.prevalence
        weights = np.where(y == 1, prevalence / share, (1 - prevalence) / (1 - share))
        weights /= weights.mean()
        reference_responsibilities = shift_prevalence(self.reference.probabilities, self.calibrated_for, prevalence)
        _, influence = _conditional_means(self._z, reference_responsibilities, weights)
        batch_covariance = (weights[:, None] * influence).T @ influence / len(influence) / len(z)
        difference = means - self._conditional_means
        p_values, tested = [], 0
        for label, block in enumerate(_blocks(z.shape[1])):
            in_class = responsibilities.sum() if label == 1 else (1 - responsibilities).sum()
            if in_class < MIN_PER_CLASS:
                p_values.append(1.0)
                continue
            tested += 1
            covariance = self._design_effects[label] * batch_covariance[block, block]
            covariance = covariance + self._reference_covariance[block, block]
            t2 = float(difference[block] @ np.linalg.pinv(covariance, rcond=1e-10) @ difference[block])
            k, nu = z.shape[1], self._patients[label] - 1
            denominator = max(1, nu - k + 1)
            p_values.append(float(stats.f.sf(t2 * denominator / (k * nu), k, denominator)))
        deviation = self._project_out @ self.whitened(embeddings).mean(axis=0)
        return min(1.0, max(1, tested) * min(p_values)), (p_values[0], p_values[1]), deviation

    def atypicality(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N,)`` Mahalanobis distance of each image to the nearer class of the reference."""
        z = self.components(embeddings)
        distances = []
        for mean, covariance in zip(self._means, self._covariances, strict=True):
            centred = z - mean
            distances.append(np.sqrt(np.einsum("ij,jk,ik->i", centred, np.linalg.pinv(covariance), centred)))
        return np.minimum(*distances)

    def domain_auc(self, embeddings: np.ndarray, prevalence: float, *, seed: int = 0) -> tuple[float, float, float]:
        """``(AUC, low, high)`` of a 5-fold cross-validated logistic regression telling the batch from
        the reference (reweighted to ``prevalence``), on the projected features; 95% bootstrap CI."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        site = self.whitened(embeddings) @ self._project_out
        reference = self._reference_whitened @ self._project_out
        features = np.vstack([reference, site])
        is_site = np.r_[np.zeros(len(reference)), np.ones(len(site))].astype(int)
        y = self.reference.labels
        share = self.reference.prevalence
        weights = np.r_[np.where(y == 1, prevalence / share, (1 - prevalence) / (1 - share)), np.ones(len(site))]
        weights[is_site == 0] *= len(site) / weights[is_site == 0].sum()  # both sides weigh the same
        scores = np.zeros(len(features))
        folds = StratifiedKFold(n_splits=min(5, len(site)), shuffle=True, random_state=seed)
        for train, held_out in folds.split(features, is_site):
            model = LogisticRegression(C=1.0, max_iter=1000).fit(
                features[train], is_site[train], sample_weight=weights[train]
            )
            scores[held_out] = model.decision_function(features[held_out])
        auc = float(roc_auc_score(is_site, scores, sample_weight=weights))
        rng = np.random.default_rng(seed)
        sites, refs = np.flatnonzero(is_site == 1), np.flatnonzero(is_site == 0)
        draws = []
        for _ in range(200):
            s, r = rng.choice(sites, sites.size), rng.choice(refs, refs.size)
            draws.append(_weighted_auc(scores[s], weights[s], scores[r], weights[r]))
        return auc, float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))

    def picture(self, embeddings: np.ndarray, deviation: np.ndarray) -> dict[str, Any]:
        """2-D coordinates for a plot: x along the class axis (normal -> pneumonia), y along the
        direction in which the batch's mean departs from the reference (else the reference's main
        remaining direction)."""
        if np.linalg.norm(deviation) > 1e-9:
            second = deviation / np.linalg.norm(deviation)
        else:
            remaining = self._reference_whitened @ self._project_out
            second = np.linalg.svd(remaining - remaining.mean(axis=0), full_matrices=False)[2][0]
        axes = np.stack([self.class_axis, second], axis=1)
        site = self.whitened(embeddings) @ axes
        reference = self._reference_whitened @ axes
        return {
            "reference": reference.round(3).tolist(),
            "reference_labels": self.reference.labels.tolist(),
            "site": site.round(3).tolist(),
        }


def _blocks(components: int) -> tuple[slice, slice]:
    """Where the normal and the pneumonia means sit in ``_conditional_means``'s vector."""
    return slice(0, components), slice(components, 2 * components)


def _conditional_means(
    z: np.ndarray, responsibilities: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Soft class-conditional means ``(2k,)``, normal then pneumonia, each image weighing with its
    probability of the class (times ``weights``), and each image's influence on them ``(N, 2k)``:
    the covariance of the means is the (weighted) mean outer product of the influences over N."""
    weights = np.ones(len(z)) if weights is None else weights
    means, influences = [], []
    for share in (1 - responsibilities, responsibilities):
        weight = weights * share
        mean = weight @ z / weight.sum()
        means.append(mean)
        influences.append(share[:, None] * (z - mean) / weight.mean())
    return np.concatenate(means), np.hstack(influences)


def _weighted_auc(
    positive: np.ndarray, positive_weights: np.ndarray, negative: np.ndarray, negative_weights: np.ndarray
) -> float:
    """Weighted Mann-Whitney AUC: the weighted share of (positive, negative) pairs ranked right,
    ties counting half (what ``roc_auc_score`` with ``sample_weight`` computes, in one sort)."""
    order = np.argsort(negative)
    sorted_negative, cumulative = negative[order], np.r_[0.0, np.cumsum(negative_weights[order])]
    below = cumulative[np.searchsorted(sorted_negative, positive, side="left")]
    tied = cumulative[np.searchsorted(sorted_negative, positive, side="right")] - below
    return float(np.sum(positive_weights * (below + tied / 2)) / (positive_weights.sum() * negative_weights.sum()))


@dataclass
class Embedded:
    """A batch's usable images (names, logits, embeddings) and the files left out, with why."""

    names: list[str]
    logits: np.ndarray
    embeddings: np.ndarray
    rejected: list[tuple[str, str]] = field(default_factory=list)


def embed(
    classifier: Any,
    sources: Sequence[tuple[str, Any]],
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Embedded:
    """Decode ``(name, source)`` pairs and run the network. Files that cannot be read, or that the
    header and image-statistics rules say are not chest X-rays, are listed and left out; the
    feature-distance gate is not applied, since a site's images may be far off and still be X-rays."""
    reads = classifier.read_many([source for _, source in sources], batch_size, progress)
    return _gathered(classifier, ((sources[index][0], read) for index, read in reads))


def _gathered(classifier: Any, reads: Iterable[tuple[str, Sequence[Any] | InputError]]) -> Embedded:
    """An ``Embedded`` batch from ``(name, read)`` pairs in order: ``read`` starts with the logit and
    the embedding, or is the ``InputError`` that left the image out."""
    names, rejected = [], []
    logits, embeddings = [], []
    for name, read in reads:
        if isinstance(read, InputError):
            rejected.append((name, read.message))
        else:
            names.append(name)
            logits.append(read[0])
            embeddings.append(read[1])
    width = sum(classifier.network.feature_sizes)
    return Embedded(
        names,
        np.asarray(logits, np.float32),
        np.stack(embeddings) if embeddings else np.zeros((0, width), np.float32),
        rejected,
    )


@dataclass
class SiteCheck:
    """The answer for one batch; ``to_json`` gives the keys the CLI writes."""

    model: str
    n: int
    rejected: list[dict[str, str]]
    shifted: bool | None
    p_value: float | None
    effect: dict[str, Any] | None
    estimated_prevalence: dict[str, Any] | None
    most_atypical: list[dict[str, Any]]
    recommendation: str
    p_value_by_class: dict[str, float] | None = None
    picture: dict[str, Any] | None = None
    atypicality: list[float] = field(default_factory=list)
    reference_atypicality: list[float] = field(default_factory=list)

    @property
    def too_small(self) -> bool:
        return self.shifted is None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("picture", "atypicality", "reference_atypicality")}

    def summary(self) -> str:
        """One line for a person: the verdict in words with its numbers (no file names, so it is
        safe to render as Markdown)."""
        if self.too_small:
            return f"Site check ({self.n} images): {self.recommendation}."
        prevalence = self.estimated_prevalence
        low, high = prevalence["ci95"]
        where = ""
        if self.shifted:
            label = min(self.p_value_by_class, key=self.p_value_by_class.get)
            where = f"; most in the images it reads as {label}"
        return (
            f"Site check ({self.n} images): {self.recommendation} (p = {self.p_value:.2g}{where}; "
            f"domain-classifier AUC {self.effect['value']:.2f}); estimated pneumonia share "
            f"{100 * prevalence['value']:.0f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%)."
        )


def assess(test: ShiftTest, embedded: Embedded, *, temperature: float, model: str = "") -> SiteCheck:
    """The site check of an embedded batch against a fitted ``ShiftTest``."""
    from .evaluation import sigmoid

    rejected = [{"name": name, "reason": reason} for name, reason in embedded.rejected]
    n = len(embedded.names)
    if n < MIN_IMAGES:
        return SiteCheck(model, n, rejected, None, None, None, None, [], TOO_SMALL)
    probabilities = sigmoid(embedded.logits, temperature)
    prevalence = estimate_prevalence(probabilities, test.calibrated_for)
    low, high = prevalence_interval(probabilities, test.calibrated_for)
    p_value, (p_normal, p_pneumonia), deviation = test.statistic(embedded.embeddings, probabilities, prevalence)
    auc, auc_low, auc_high = test.domain_auc(embedded.embeddings, prevalence)
    distances = test.atypicality(embedded.embeddings)
    reference = np.sort(test.reference_atypicality)
    order = np.argsort(-distances)[:ATYPICAL_SHOWN]
    most_atypical = [
        {
            "name": embedded.names[i],
            "atypicality": round(float(distances[i]), 2),
            "reference_percentile": round(100 * float(np.searchsorted(reference, distances[i]) / reference.size), 1),
        }
        for i in order
    ]
    shifted = p_value < ALPHA
    return SiteCheck(
        model=model,
        n=n,
        rejected=rejected,
        shifted=bool(shifted),
        p_value=p_value,
        effect={"name": "domain-classifier AUC", "value": auc, "ci95": [auc_low, auc_high]},
        estimated_prevalence={"value": prevalence, "ci95": [low, high]},
        most_atypical=most_atypical,
        recommendation=DIFFERS if shifted else LOOKS_ALIKE,
        p_value_by_class={"normal": p_normal, "pneumonia": p_pneumonia},
        picture=test.picture(embedded.embeddings, deviation),
        atypicality=distances.round(3).tolist(),
        reference_atypicality=test.reference_atypicality.round(3).tolist(),
    )


def build_reference(classifier: Any, data_dir: Path) -> SiteReference:
    """A trained model's reference from its own validation split: what ``train`` writes at
    registration, for models trained before site checks existed."""
    from .config import TrainingConfig
    from .data import load_arrays, training_split
    from .evaluation import sigmoid

    config = TrainingConfig.from_dict(classifier.metadata["training_config"])
    _, val_samples = training_split(data_dir, config)
    x_val, y_val = load_arrays(val_samples, classifier.contract)
    logits, embeddings = classifier.network.outputs(x_val)
    groups = np.unique([s.patient_id for s in val_samples], return_inverse=True)[1]
    return SiteReference(embeddings, y_val, sigmoid(logits, classifier.contract.temperature), groups)


def check_site(
    classifier: Any,
    sources: Sequence[tuple[str, Any]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SiteCheck:
    """Check a batch of ``(name, source)`` images (paths, bytes or arrays) against the model's
    reference. Raises ``ValueError`` when the model ships no site reference."""
    test = _shift_test(classifier)
    return _assess(classifier, test, embed(classifier, sources, progress=progress))


def check_analyzed(classifier: Any, results: Sequence[tuple[str, Any]]) -> SiteCheck:
    """The site check of ``(name, analysis or InputError)`` pairs from ``classifier.analyze``: the
    same check as ``check_site`` of those images, without running the network again. Images the
    feature gate refused count, as in ``embed``; the others that failed are listed as left out."""

    def read(result: Any) -> Sequence[Any] | InputError:
        if isinstance(result, InputError):
            return result if result.read is None else result.read
        return result.logit, result.embedding

    test = _shift_test(classifier)
    return _assess(classifier, test, _gathered(classifier, ((name, read(result)) for name, result in results)))


def _shift_test(classifier: Any) -> ShiftTest:
    reference = SiteReference.load(classifier.path / REFERENCE_FILE)
    if reference is None:
        raise ValueError(
            f"model {classifier.name} has no site reference ({REFERENCE_FILE}): models trained on a small subset "
            f"have too few validation images for one; for another model, make it with: "
            f"scripts/pneumo site-reference {classifier.name}"
        )
    return ShiftTest(reference, classifier.contract.calibration_prevalence or reference.prevalence)


def _assess(classifier: Any, test: ShiftTest, embedded: Embedded) -> SiteCheck:
    return assess(test, embedded, temperature=classifier.contract.temperature, model=classifier.name)
