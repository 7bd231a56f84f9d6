"""Grad-CAM under Keras 3 (TensorFlow backend): which regions drove the verdict.

``Explainer`` differentiates the ``Network``'s own graph, so a verdict with its heatmap (and the
input gate's embedding) costs one forward and one backward pass. ``heatmap`` turns a raw map into
an image-sized one; drawing it is ``render.overlay``'s job.
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

from .imaging import frame_box
from .network import Network


class Explainer:
    """Grad-CAM maps of ``layer_name`` for the verdict: pneumonia at or above ``decision_logit``
    (the gradient of the logit), normal below it (the gradient of the negated logit)."""

    def __init__(self, network: Network, layer_name: str, decision_logit: float = 0.0) -> None:
        self._network = network
        self._decision_logit = float(decision_logit)
        self._graph_model = network.with_layer(layer_name)
        self._explain = tf.function(self._explain_batch, input_signature=network.input_signature, reduce_retracing=True)

    def _explain_batch(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            conv, logits, *features = self._graph_model(images, training=False)
            score = tf.reduce_sum(logits)
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        # Explain the predicted class: for a NORMAL verdict the evidence *against* pneumonia.
        sign = tf.reshape(tf.where(logits[:, 0] >= self._decision_logit, 1.0, -1.0), (-1, 1, 1))
        cams = tf.nn.relu(tf.reduce_sum(conv * weights, axis=-1) * sign)
        return logits[:, 0], cams, self._network.embed(features)

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


def gradcam(network: Network, images: np.ndarray, layer_name: str) -> np.ndarray:
    """One-off Grad-CAM for a batch: ``(N, S, S)`` heatmaps in [0, 1] at the model input size."""
    _, cams, _ = Explainer(network, layer_name).explain(images)
    size = images.shape[1:3]
    return np.stack([heatmap(c, size[0], size[1]) for c in cams])
