"""``Classifier``: a loaded model with its contract; image in, calibrated verdict and heatmap out."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .contract import ModelContract
from .errors import InputError, ModelLoadError
from .evaluation import shift_prevalence, sigmoid
from .gate import GATE_FILE, FeatureGate, check_header_and_statistics
from .imaging import DecodedImage, ImageSource, decode, fit_longer_side, to_model_input


@dataclass
class Prediction:
    probability_pneumonia: float
    label: str
    band: str
    operating_threshold: float
    facts: dict[str, Any] = field(default_factory=dict)
    prevalence: float | None = None
    """Prevalence of pneumonia the probability (and threshold) refer to; ``None``: not recorded."""

    def at_prevalence(self, prevalence: float) -> Prediction:
        """The same verdict with probability and threshold re-expressed for another prevalence.

        The label and reading do not change: the threshold moves with the probability.
        """
        if self.prevalence is None:
            raise ValueError("this model did not record the prevalence its probabilities are calibrated for")
        return replace(
            self,
            probability_pneumonia=shift_prevalence(self.probability_pneumonia, self.prevalence, prevalence),
            operating_threshold=shift_prevalence(self.operating_threshold, self.prevalence, prevalence),
            prevalence=float(prevalence),
        )


@dataclass
class Analysis:
    """A verdict with its Grad-CAM heatmap (float32 H x W in [0, 1]) and the grayscale image it lies
    over, at the same size: the decoded image's, or a display size (``Classifier.analyze``)."""

    prediction: Prediction
    heatmap: np.ndarray
    pixels: np.ndarray
    logit: float = float("nan")
    """The network's logit, before calibration (for a site check of analysed images)."""
    embedding: np.ndarray | None = None
    """The network's feature-layer embedding (for a site check of analysed images)."""

    @property
    def nbytes(self) -> int:
        """Memory the arrays hold (for caches bounded by size)."""
        return int(self.heatmap.nbytes + self.pixels.nbytes + (0 if self.embedding is None else self.embedding.nbytes))


class Classifier:
    """Thread-safe inference for one model folder. Load once, call from many threads."""

    def __init__(
        self, model: Any, contract: ModelContract, metadata: dict[str, Any], path: Path, gate: FeatureGate | None
    ):
        from .gradcam import Explainer
        from .network import Network

        self.model = model
        self.contract = contract
        self.metadata = metadata
        self.path = path
        self.name = path.name
        self.feature_gate = gate
        threshold = contract.operating_threshold
        decision_logit = contract.temperature * float(np.log(threshold / (1 - threshold)))
        self.network = Network(model, contract.feature_layers, contract.frame_scale)
        self._explainer = Explainer(self.network, contract.gradcam_layer, decision_logit)

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> Classifier:
        """Load a registry name, a model folder, or (``None``) the default model.

        Raises:
            ModelLoadError: with a readable reason when the folder is missing or broken.
        """
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        try:
            path = registry.resolve(model)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
        metadata = registry.read_metadata(path)
        try:
            contract = ModelContract.from_dict(metadata["contract"])
            # safe_mode refuses lambda layers and arbitrary code embedded in the file.
            keras_model = keras.saving.load_model(path / registry.MODEL_FILE, compile=False, safe_mode=True)
            gate = FeatureGate.load(path / GATE_FILE)
        except Exception as exc:
            raise ModelLoadError(f"model {path.name} could not be loaded: {type(exc).__name__}: {exc}") from None
        classifier = cls(keras_model, contract, metadata, path, gate)
        classifier.warm_up()
        return classifier

    @classmethod
    def load_or_fallback(cls, model: str | None = None) -> tuple[Classifier, str | None]:
        """Load ``model`` (or the default); on failure fall back to the shipped model.

        Returns the classifier and a warning to show the user (``None`` when nothing went wrong).
        """
        try:
            return cls.load(model), None
        except ModelLoadError as exc:
            fallback = cls.load(registry.SHIPPED_DEFAULT)
            return fallback, f"{exc}. Using the shipped model {registry.SHIPPED_DEFAULT} instead."

    def warm_up(self) -> None:
        """Trace the compiled graphs once so the first real request is fast."""
        blank = np.zeros((1, self.contract.input_size, self.contract.input_size, 1), np.float32)
        self._explainer.explain(blank)
        self.network.outputs(blank)

    def prepare(self, image: ImageSource | DecodedImage) -> tuple[np.ndarray, DecodedImage]:
        """Decode and run the model-free gate checks; ``(model_input (S, S, 1), decoded)``."""
        decoded = image if isinstance(image, DecodedImage) else decode(image)
        check_header_and_statistics(decoded)
        return to_model_input(decoded.pixels, self.contract)[:, :, None], decoded

    def _prediction(self, logit: float, embedding: np.ndarray, decoded: DecodedImage) -> Prediction:
        if self.feature_gate is not None:
            self.feature_gate.check(embedding)
        probability = float(sigmoid(logit, self.contract.temperature))
        return Prediction(
            probability_pneumonia=probability,
            label=self.contract.label_for(probability),
            band=self.contract.band_for(probability),
            operating_threshold=self.contract.operating_threshold,
            facts=dict(decoded.facts),
            prevalence=self.contract.calibration_prevalence,
        )

    def predict(self, image: ImageSource | DecodedImage) -> Prediction:
        """Verdict for one image (path, bytes, array or ``DecodedImage``).

        Raises:
            InputError: the input cannot be read or is not a chest X-ray.
        """
        model_input, decoded = self.prepare(image)
        logits, embeddings = self.network.outputs(model_input[None])
        return self._prediction(float(logits[0]), embeddings[0], decoded)

    def analyze(self, image: ImageSource | DecodedImage, display_side: int | None = None) -> Analysis:
        """Verdict and Grad-CAM from one forward and one backward pass.

        The verdict always comes from the full image. With ``display_side``, the image and its
        heatmap are returned no larger than that on their longer side, the heatmap as float16 (for a
        screen, which shows 256 levels: a fraction of the memory and of the work of up-sampling and
        encoding); otherwise the heatmap is float32 at the image's own resolution.
        """
        from .gradcam import heatmap

        model_input, decoded = self.prepare(image)
        logits, cams, embeddings = self._explainer.explain(model_input[None])
        try:
            prediction = self._prediction(float(logits[0]), embeddings[0], decoded)
        except InputError as error:  # refused by the feature gate
            error.read = (float(logits[0]), embeddings[0])
            raise
        if display_side is None:
            height, width, pixels = decoded.height, decoded.width, decoded.pixels
        else:
            pixels = decoded.pixels
            if max(pixels.shape[:2]) > display_side:  # shrunk for a screen, never enlarged
                pixels = fit_longer_side(pixels, display_side)
            height, width = pixels.shape[:2]
        cam = heatmap(cams[0], height, width, self.contract.frame_scale)
        shown = cam if display_side is None else cam.astype(np.float16)
        return Analysis(prediction, shown, pixels, float(logits[0]), embeddings[0])

    def gradcam(self, image: ImageSource | DecodedImage) -> np.ndarray:
        """Grad-CAM for the predicted class: float32 H x W in [0, 1] at the image's resolution."""
        return self.analyze(image).heatmap

    def read_many(
        self,
        images: Sequence[ImageSource | InputError],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, tuple[float, np.ndarray, DecodedImage] | InputError]]:
        """Decode, check by header and image statistics, and run the network on many inputs, in
        batches of ``batch_size``: ``(index, (logit, embedding, decoded))`` for each input, in order, or
        ``(index, InputError)`` for one that failed (an ``InputError`` given as an input stands for
        itself). The feature gate is not applied. Only one batch of decoded images is held at a time.
        ``progress(done, total)`` is called after each batch."""
        for start in range(0, len(images), batch_size):
            read: dict[int, tuple[float, np.ndarray, DecodedImage] | InputError] = {}
            prepared: list[tuple[int, np.ndarray, DecodedImage]] = []
            for index in range(start, min(start + batch_size, len(images))):
                try:
                    if isinstance(images[index], InputError):  # found unreadable earlier (inputs.zip_images)
                        raise images[index]
                    model_input, decoded = self.prepare(images[index])
                    prepared.append((index, model_input, decoded))
                except InputError as error:
                    read[index] = error
            if prepared:
                logits, embeddings = self.network.outputs(np.stack([p[1] for p in prepared]))
                for (index, _, decoded), logit, embedding in zip(prepared, logits, embeddings, strict=True):
                    read[index] = (float(logit), embedding, decoded)
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
            yield from sorted(read.items(), key=lambda item: item[0])

    def predict_many(
        self,
        images: list[ImageSource],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Prediction | InputError]:
        """Score many inputs; a bad one yields its ``InputError`` in place, the rest are scored.

        ``progress(done, total)`` is called after each batch.
        """
        results: list[Prediction | InputError] = []
        for _, read in self.read_many(images, batch_size, progress):
            try:
                results.append(read if isinstance(read, InputError) else self._prediction(*read))
            except InputError as error:  # refused by the feature gate
                results.append(error)
        return results

    def probabilities(self, model_inputs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for prepared inputs ``(N, S, S, 1)``, without the input gate."""
        return sigmoid(self.network.outputs(model_inputs)[0], self.contract.temperature)
