"""Grad-CAM under Keras 3 (TensorFlow backend): which regions drove the verdict.

``Explainer`` compiles one graph that returns the logits *and* the class activation maps, so a
verdict with its heatmap costs one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from .imaging import frame_box


class Explainer:
    """Logits, raw Grad-CAM maps and feature embeddings for model inputs ``(N, S, S, 1) float32``.

    The embedding concatenates the spatial means of ``feature_layers`` (the input gate's evidence),
    taken over the part of each map that covers the image, not its black frame (``frame_scale``).
    Grad-CAM explains the verdict: pneumonia at or above ``decision_logit``, normal below it.
    """

    def __init__(
        self,
        model: keras.Model,
        layer_name: str,
        feature_layers: Sequence[str] = ("pool",),
        frame_scale: float = 1.0,
        decision_logit: float = 0.0,
    ) -> None:
        self._frame_scale = float(frame_scale)
        self._decision_logit = float(decision_logit)
        target = model.get_layer(layer_name).output
        features = [model.get_layer(name).output for name in feature_layers]
        logit = model.outputs[0]
        # model.inputs (a list) rather than model.input: Keras 3 keeps nested structure otherwise.
        self._graph_model = keras.Model(model.inputs, [target, logit, *features])
        self._forward_model = keras.Model(model.inputs, [logit, *features])
        input_shape = tuple(model.inputs[0].shape[1:])
        signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
        self._explain = tf.function(self._explain_batch, input_signature=signature, reduce_retracing=True)
        self._predict = tf.function(self._predict_batch, input_signature=signature, reduce_retracing=True)

    def _embed(self, features: list[tf.Tensor]) -> tf.Tensor:
        pooled = []
        for f in features:
            if len(f.shape) == 4:
                top, bottom, left, right = frame_box(self._frame_scale, int(f.shape[1]), int(f.shape[2]))
                f = tf.reduce_mean(f[:, top:bottom, left:right], axis=(1, 2))
            pooled.append(f)
        return tf.concat(pooled, axis=-1)

    def _predict_batch(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, *features = self._forward_model(images, training=False)
        return logits, self._embed(features)

    def _explain_batch(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            conv, logits, *features = self._graph_model(images, training=False)
            score = tf.reduce_sum(logits)
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        # Explain the predicted class: for a NORMAL verdict the evidence *against* pneumonia.
        sign = tf.reshape(tf.where(logits[:, 0] >= self._decision_logit, 1.0, -1.0), (-1, 1, 1))
        cams = tf.nn.relu(tf.reduce_sum(conv * weights, axis=-1) * sign)
        return logits[:, 0], cams, self._embed(features)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N,), embeddings (N, D))`` without the backward pass."""
        logits, embeddings = self._predict(tf.convert_to_tensor(images, tf.float32))
        return logits.numpy()[:, 0], embeddings.numpy()

    def explain(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(logits (N,), cams (N, h, w), embeddings (N, D))``; cams unnormalised, at the layer's size."""
        logits, cams, embeddings = self._explain(tf.convert_to_tensor(images, tf.float32))
        return logits.numpy(), cams.numpy(), embeddings.numpy()


def heatmap(cam: np.ndarray, height: int, width: int, frame_scale: float = 1.0) -> np.ndarray:
    """A raw activation map -> float32 ``(height, width)`` in [0, 1] (all zeros if it is flat).

    With ``frame_scale`` < 1 (see ``ModelContract``), only the part of the map that covers the
    image, not its black frame, is kept, so the heatmap lines up with the image.
    """
    cam = np.maximum(np.asarray(cam, dtype=np.float32), 0.0)
    if frame_scale != 1.0:
        cam = cv2.resize(cam, (cam.shape[1] * 16, cam.shape[0] * 16), interpolation=cv2.INTER_LINEAR)
        top, bottom, left, right = frame_box(frame_scale, *cam.shape)
        cam = cam[top:bottom, left:right]
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    return cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)


def gradcam(model: keras.Model, images: np.ndarray, layer_name: str) -> np.ndarray:
    """One-off Grad-CAM for a batch: ``(N, S, S)`` heatmaps in [0, 1] at the model input size."""
    _, cams, _ = Explainer(model, layer_name).explain(images)
    size = images.shape[1:3]
    return np.stack([heatmap(c, size[0], size[1]) for c in cams])
