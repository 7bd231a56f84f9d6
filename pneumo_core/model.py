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

from .contract import ZOOM_OUT, ModelContract, TrainingConfig

ARCHITECTURES = ("compact_resnet", "resnet50", "efficientnetb0", "densenet121")
GRADCAM_LAYER = "gradcam_target"


def feature_layers(arch: str, members: int = 1) -> tuple[str, ...]:
    """Layers whose mean activations the input gate models: several depths see both texture
    (is this a radiograph at all?) and anatomy (is it a chest?). An ensemble uses its first
    member's stages and the pooled features of all members."""
    if arch == "compact_resnet":
        prefix = member_prefix(0) if members > 1 else ""
        return (f"{prefix}stage1_out", f"{prefix}stage2_out", f"{prefix}stage3_out", "pool")
    return ("pool",)


def member_prefix(index: int) -> str:
    """Layer-name prefix of ensemble member ``index`` inside a merged model."""
    return f"m{index}_"


def build_model(contract: ModelContract, config: TrainingConfig, weights: str | None = None) -> keras.Model:
    """Build an uncompiled model whose output is a single logit (no sigmoid)."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; choose one of {ARCHITECTURES}")
    size = contract.input_size
    inputs = keras.Input(shape=(size, size, contract.channels), name="image")
    x = augmentation(config.seed, config.acquisition_augment, config.max_zoom_in)(inputs) if config.augment else inputs
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)
    if config.augment and config.acquisition_augment:
        x = layers.GaussianNoise(0.03, seed=config.seed + 7, name="noise")(x)  # ~4 grey levels, training only
    if config.arch == "compact_resnet":
        features = _compact_resnet(x, config.width, bn_momentum=config.bn_momentum)
    else:
        features = _application_backbone(x, config.arch, weights)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, logit, name=config.arch)


def augmentation(
    seed: int, acquisition: bool = False, max_zoom_in: float = TrainingConfig.max_zoom_in
) -> keras.Sequential:
    """Geometric and photometric jitter, active only when ``training=True``.

    No flips: a mirrored chest (heart on the right) is not a plausible radiograph. ``acquisition``
    adds blur, sharpening and noise, which differ between X-ray systems and JPEG re-encodings.
    Zoom ranges from ``max_zoom_in`` in (a tighter field of view) to ``ZOOM_OUT`` out (black frame).
    """
    value_range = (0.0, 255.0)
    steps = [
        layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
        layers.RandomZoom((-max_zoom_in, ZOOM_OUT), fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed + 2),
        layers.RandomContrast(0.25, value_range=value_range, seed=seed + 3),
        layers.RandomBrightness(0.1, value_range=value_range, seed=seed + 4),
    ]
    if acquisition:
        steps += [
            layers.RandomGaussianBlur(factor=0.5, kernel_size=3, sigma=1.0, value_range=value_range, seed=seed + 5),
            layers.RandomSharpness(0.3, value_range=value_range, seed=seed + 6),
        ]
    return keras.Sequential(steps, name="augmentation")


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True, momentum: float = 0.99):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if activation else x


def _residual_block(x, filters: int, stride: int, name: str, momentum: float = 0.99):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a", momentum=momentum)
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", activation=False, momentum=momentum)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, stride, f"{name}_proj", activation=False, momentum=momentum)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _compact_resnet(x, width: int, prefix: str = "", bn_momentum: float = 0.99):
    """A small ResNet for single-channel radiographs: stem /4, stages /8, /16, /16.

    The last stage keeps /16 resolution (14 x 14 at 224 px, 8 x 8 at 128 px) so Grad-CAM is
    not a /32 blur.
    ``prefix`` names an ensemble member's layers (see ``merge_members``); ``bn_momentum`` is that
    of the BatchNorm moving statistics (``TrainingConfig.bn_momentum``).
    """
    m = bn_momentum
    x = _conv_bn(x, width // 2, 5, 2, f"{prefix}stem", momentum=m)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}stem_pool")(x)
    x = _residual_block(x, width, 1, f"{prefix}stage1", m)
    x = _residual_block(x, width * 2, 2, f"{prefix}stage2", m)
    x = _residual_block(x, width * 4, 2, f"{prefix}stage3", m)
    x = layers.SpatialDropout2D(0.1, name=f"{prefix}stage3_dropout")(x)
    x = _residual_block(x, width * 6, 1, f"{prefix}stage4", m)
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
    size = contract.input_size
    inputs = keras.Input(shape=(size, size, contract.channels), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    trunks = [_compact_resnet(x, config.width, member_prefix(i), config.bn_momentum) for i in range(len(members))]
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
