"""Keras 3 model definitions.

Input: ``(S, S, 1) float32`` in [0, 255] (``imaging.to_model_input``). Augmentation runs first, on
the 0..255 range Keras' augmentation layers assume, and only in training; rescaling lives inside
the model so it is saved with the weights. Output: one logit; ``sigmoid(logit / T)`` is the
calibrated probability of pneumonia (T from the contract).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .config import ZOOM_IN, ZOOM_OUT, TrainingConfig, member_prefix
from .contract import GRADCAM_LAYER, ModelContract


def build_model(contract: ModelContract, config: TrainingConfig, weights: str | None = None) -> keras.Model:
    """Build an uncompiled model whose output is a single logit (no sigmoid)."""
    inputs = _input(contract)
    x = _rescale(augmentation(config.seed)(inputs) if config.augment else inputs)
    if config.arch == "compact_resnet":
        features = _compact_resnet(x, config.width)
    else:
        features = _application_backbone(x, config.arch, weights)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, logit, name=config.arch)


def augmentation(seed: int) -> keras.Sequential:
    """Geometric and photometric jitter, active only when ``training=True``.

    No flips: a mirrored chest (heart on the right) is not a plausible radiograph. Zoom ranges from
    ``ZOOM_IN`` in (a tighter field of view) to ``ZOOM_OUT`` out (black frame).
    """
    value_range = (0.0, 255.0)
    return keras.Sequential(
        [
            layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
            layers.RandomZoom((-ZOOM_IN, ZOOM_OUT), fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed + 2),
            layers.RandomContrast(0.25, value_range=value_range, seed=seed + 3),
            layers.RandomBrightness(0.1, value_range=value_range, seed=seed + 4),
        ],
        name="augmentation",
    )


def _input(contract: ModelContract):
    size = contract.input_size
    return keras.Input(shape=(size, size, contract.channels), name="image")


def _rescale(x):
    """[0, 255] -> [-1, 1] inside the model, so it is saved with the weights."""
    return layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if activation else x


def _residual_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", activation=False)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, stride, f"{name}_proj", activation=False)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _compact_resnet(x, width: int, prefix: str = ""):
    """A small ResNet for single-channel radiographs: stem /4, stages /8, /16, /16.

    The last stage keeps /16 resolution (14 x 14 at 224 px, 8 x 8 at 128 px) so Grad-CAM is
    not a /32 blur.
    ``prefix`` names an ensemble member's layers (see ``merge_members``).
    """
    x = _conv_bn(x, width // 2, 5, 2, f"{prefix}stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}stem_pool")(x)
    x = _residual_block(x, width, 1, f"{prefix}stage1")
    x = _residual_block(x, width * 2, 2, f"{prefix}stage2")
    x = _residual_block(x, width * 4, 2, f"{prefix}stage3")
    x = layers.SpatialDropout2D(0.1, name=f"{prefix}stage3_dropout")(x)
    x = _residual_block(x, width * 6, 1, f"{prefix}stage4")
    return layers.Activation("linear", name=f"{prefix}{GRADCAM_LAYER}")(x)


def merge_members(contract: ModelContract, config: TrainingConfig, members: list[keras.Model]) -> keras.Model:
    """One inference model whose logit is the mean of the trained members' logits.

    Each member's trunk is copied under its own name prefix; their final feature maps are
    concatenated into the Grad-CAM layer, pooled, and one dense layer holding every member's head
    weights divided by the member count gives exactly the mean logit (pooling and the heads are
    linear). Grad-CAM of the merged model is therefore the sum of the members' class maps, and the
    file loads and runs like any single model. Augmentation is left out: it only acts in training.
    """
    if config.arch != "compact_resnet":
        raise ValueError(f"ensembles are built for compact_resnet only, not {config.arch!r}")
    inputs = _input(contract)
    x = _rescale(inputs)
    trunks = [_compact_resnet(x, config.width, member_prefix(i)) for i in range(len(members))]
    features = layers.Concatenate(name=GRADCAM_LAYER)(trunks)
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    pooled = layers.Dropout(config.dropout, name="head_dropout")(pooled)
    logit = layers.Dense(1, name="logit")(pooled)
    merged = keras.Model(inputs, logit, name=f"{config.arch}_x{len(members)}")
    for index, member in enumerate(members):
        for layer in member.layers:
            if layer.weights and layer.name not in ("logit",):
                merged.get_layer(member_prefix(index) + layer.name).set_weights(layer.get_weights())
    heads = [member.get_layer("logit").get_weights() for member in members]
    kernel = np.concatenate([w for w, _ in heads], axis=0) / len(members)
    bias = np.mean([b for _, b in heads], axis=0)
    merged.get_layer("logit").set_weights([kernel, bias])
    return merged


def _application_backbone(x, arch: str, weights: str | None):
    """A keras.applications backbone (random init unless a local weights file is given)."""
    apps = {
        "resnet50": keras.applications.ResNet50,
        "efficientnetb0": keras.applications.EfficientNetB0,
        "densenet121": keras.applications.DenseNet121,
    }
    x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    backbone = apps[arch](include_top=False, weights=None, input_shape=tuple(x.shape[1:]))
    if weights:
        backbone.load_weights(weights)
    features = backbone(x)
    return layers.Activation("linear", name=GRADCAM_LAYER)(features)
