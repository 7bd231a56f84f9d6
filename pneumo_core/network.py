"""``Network``: the forward pass of a trained Keras model, the one place that runs it.

Inputs are prepared model inputs ``(N, S, S, 1) float32`` in [0, 255]; outputs are uncalibrated
logits ``(N,)`` and embeddings ``(N, D)``: the spatial means of the contract's feature layers, taken
over the part of each map that covers the image, not its black frame (``frame_scale``). The input
gate models those embeddings; Grad-CAM (``gradcam.Explainer``) reuses the same graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from .imaging import frame_box


class Network:
    """A compiled forward graph for ``model``: logits and embeddings in one pass. Thread-safe."""

    def __init__(self, model: keras.Model, feature_layers: Sequence[str] = ("pool",), frame_scale: float = 1.0) -> None:
        self.model = model
        self.frame_scale = float(frame_scale)
        self.feature_sizes = [int(model.get_layer(name).output.shape[-1]) for name in feature_layers]
        self._features = [model.get_layer(name).output for name in feature_layers]
        # model.inputs (a list) rather than model.input: Keras 3 keeps nested structure otherwise.
        self._forward_model = keras.Model(model.inputs, [model.outputs[0], *self._features])
        self.input_signature = [tf.TensorSpec((None, *tuple(model.inputs[0].shape[1:])), tf.float32)]
        self._forward = tf.function(self._forward_batch, input_signature=self.input_signature, reduce_retracing=True)

    def with_layer(self, layer_name: str) -> keras.Model:
        """A model giving ``[layer output, logit, *features]``: the graph Grad-CAM differentiates."""
        return keras.Model(
            self.model.inputs, [self.model.get_layer(layer_name).output, self.model.outputs[0], *self._features]
        )

    def embed(self, features: list[tf.Tensor]) -> tf.Tensor:
        """Feature-layer outputs -> one ``(N, D)`` embedding (spatial means over the image area)."""
        pooled = []
        for f in features:
            if len(f.shape) == 4:
                top, bottom, left, right = frame_box(self.frame_scale, int(f.shape[1]), int(f.shape[2]))
                f = tf.reduce_mean(f[:, top:bottom, left:right], axis=(1, 2))
            pooled.append(f)
        return tf.concat(pooled, axis=-1)

    def _forward_batch(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, *features = self._forward_model(images, training=False)
        return logits[:, 0], self.embed(features)

    def outputs(self, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N,), embeddings (N, D))`` for prepared inputs, in batches of ``batch_size``."""
        parts = [
            self._forward(tf.convert_to_tensor(images[i : i + batch_size], tf.float32))
            for i in range(0, len(images), batch_size)
        ]
        if not parts:
            return np.zeros(0, np.float32), np.zeros((0, sum(self.feature_sizes)), np.float32)
        return np.concatenate([p[0].numpy() for p in parts]), np.concatenate([p[1].numpy() for p in parts])
