"""Running a model on a scan: checking the input, preprocessing, onnxruntime, postprocessing."""
