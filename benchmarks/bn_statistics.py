"""Are the early validation-loss spikes stale BatchNorm statistics? (A diagnostic, not a model.)

    python benchmarks/bn_statistics.py [--model NAME] [--data DIR] [--epochs N]

Retrains the model's configuration (same seed, split and optimizer) for the first N epochs (default
3, about 2.5 min each here), without the learning-rate schedule or early stopping, so it follows
the recorded run only until that run first lowered its rate (v1: after epoch 3; the stored-statistics
losses reproduce v1's recorded 1.107, 3.138 and 7.359). After each epoch it prints the label-smoothed
validation loss and AUC, as training's own validation sees them (the BatchNorm moving statistics as
stored, momentum 0.99: an average over the last ~100 steps), and again with the statistics
re-estimated for the current weights by one pass over the training images (batches of 64, momentum
0.9), once on the plain images and once through the training augmentation. Only BatchNorm
statistics differ between the three; the weights are the same.

    python benchmarks/bn_statistics.py --trained [--model NAME] [--data DIR]

Instead scores the trained model as saved, on the unframed validation images: with its stored
statistics, then with them re-estimated at its final weights exactly as ``train.py --bn-reestimate
1024`` does (the same 1024 training images, through the augmentation), and on the same images
without augmentation. For v1 the re-estimated statistics are worse, not better (see the README).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def with_weights_of(network, source):
    """``network`` holding ``source``'s weights and BatchNorm statistics, layer by layer (by name;
    ``network`` may lack the augmentation, which has none)."""
    for layer in network.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return network


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pneumonia-cnn-v1", help="whose training configuration (default v1)")
    add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trained", action="store_true", help="re-estimate the saved model's statistics instead")
    args = parser.parse_args(argv)
    if args.trained:
        trained(args.model, args.data)
        return

    import keras
    from sklearn.metrics import roc_auc_score

    from pneumo_core import registry
    from pneumo_core.contract import TrainingConfig
    from pneumo_core.data import class_weights, load_arrays, training_split
    from pneumo_core.model import build_model
    from pneumo_core.training import contract_for, optimizer
    from pneumo_core.training import loss as training_loss

    folder = registry.resolve(args.model)
    config = TrainingConfig.from_dict(registry.read_metadata(folder)["training_config"])
    contract = contract_for(config)
    fit, val = training_split(args.data, config)
    x_fit, y_fit = load_arrays(fit, contract)
    x_val, y_val = load_arrays(val, contract)
    weights_by_class = class_weights(y_fit)
    loss = training_loss(config)

    keras.utils.set_random_seed(config.seed)
    model = build_model(contract, config)
    model.compile(optimizer=optimizer(config, config.learning_rate), loss=loss)
    # copies whose statistics get re-estimated, so the trained model's own random state is untouched
    plain, augmented = build_model(contract, replace(config, augment=False)), build_model(contract, config)
    rng = np.random.default_rng(0)

    def score(network) -> str:
        logits = network.predict(x_val, batch_size=64, verbose=0)
        return f"{float(loss(y_val[:, None].astype('float32'), logits)):.3f} / {roc_auc_score(y_val, logits[:, 0]):.3f}"

    def reestimated(network) -> str:
        for layer in with_weights_of(network, model).layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
        order = rng.permutation(len(x_fit))
        for start in range(0, len(x_fit), 64):
            network(x_fit[order[start : start + 64]], training=True)
        return score(network)

    print("validation loss / AUC after each epoch, by where the BatchNorm statistics come from")
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        model.fit(
            x_fit, y_fit.astype("float32"), batch_size=config.batch_size, epochs=1,
            class_weight=weights_by_class, shuffle=True, verbose=0,
        )  # fmt: skip
        print(
            f"epoch {epoch}: stored {score(model)}   re-estimated, plain images {reestimated(plain)}   "
            f"re-estimated, augmented {reestimated(augmented)}   ({time.time() - started:.0f} s)",
            flush=True,
        )


def trained(name: str, data: Path) -> None:
    """The saved model scored with stored and with re-estimated BatchNorm statistics."""
    import keras
    from sklearn.metrics import roc_auc_score

    from pneumo_core import Classifier
    from pneumo_core.contract import TrainingConfig
    from pneumo_core.data import load_arrays, training_split
    from pneumo_core.evaluation import temperature_scaled
    from pneumo_core.model import build_model
    from pneumo_core.training import batchnorm_subset, reestimate_batchnorm
    from pneumo_core.training import loss as training_loss

    clf = Classifier.load(name)
    config = TrainingConfig.from_dict(clf.metadata["training_config"])
    keras.utils.set_random_seed(config.seed)  # the augmentation's and dropout's draws in the re-estimation
    fit, val = training_split(data, config)
    unframed = clf.contract.with_calibration(operating_threshold=0.5, temperature=1.0, frame_scale=1.0)
    x_fit, _ = load_arrays(fit, unframed)
    x_val, y_val = load_arrays(val, unframed)
    images = batchnorm_subset(replace(config, bn_reestimate=1024), x_fit)  # what --bn-reestimate 1024 uses
    loss = training_loss(config)

    def score(network, label: str) -> None:
        logits = np.asarray(network.predict(x_val, batch_size=64, verbose=0)).reshape(-1)
        _, p, calibrated = temperature_scaled(y_val, logits)
        print(
            f"{label}: label-smoothed loss {float(loss(y_val[:, None].astype('float32'), logits[:, None])):.4f}, "
            f"calibrated log-loss {calibrated:.4f}, AUC {roc_auc_score(y_val, p):.4f}, "
            f"mean logit {logits.mean():+.2f}",
            flush=True,
        )

    print(f"{clf.name}, {len(y_val)} unframed validation images")
    for augment in (True, False):
        network = with_weights_of(build_model(clf.contract, replace(config, augment=augment)), clf.model)
        if augment:
            score(network, "stored statistics")
        norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
        stored = [(layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()) for layer in norms]
        reestimate_batchnorm(network, images)
        score(network, f"re-estimated on {len(images)} training images{'' if augment else ', no augmentation'}")
        shifts, ratios = [], []
        for layer, (mean, variance) in zip(norms, stored, strict=True):
            shifts.append(np.median(np.abs(layer.moving_mean.numpy() - mean) / np.sqrt(variance + layer.epsilon)))
            ratios.append(np.median(layer.moving_variance.numpy() / (variance + layer.epsilon)))
        print(
            f"  over its {len(norms)} BatchNorm layers: median mean shift {min(shifts):.3f}-{max(shifts):.3f} "
            f"standard deviations, median variance ratio {min(ratios):.2f}-{max(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
