"""Running a model on a scan: checking the input, preprocessing, onnxruntime, postprocessing."""

from medmodels.inference.predict import (
    LabelResult,
    Prediction,
    check_fit,
    fit_problems,
    predict,
)
from medmodels.inference.runtime import clear_sessions

__all__ = ["LabelResult", "Prediction", "check_fit", "clear_sessions", "fit_problems", "predict"]
