"""pneumo_core: chest X-ray pneumonia classification, shared by the CLI, training and the app.

from pneumo_core import Classifier
clf = Classifier.load()                  # the default model in models/
result = clf.predict("chest.jpeg")       # .probability_pneumonia, .label
heatmap = clf.gradcam("chest.jpeg")      # float32 H x W in [0, 1]

The app's pages reach the core through ``pneumo_core.api`` alone.
"""

from .classifier import Analysis, Classifier, Prediction
from .config import TrainingConfig
from .contract import ModelContract
from .errors import InputError, ModelLoadError

__all__ = ["Analysis", "Classifier", "InputError", "ModelContract", "ModelLoadError", "Prediction", "TrainingConfig"]
