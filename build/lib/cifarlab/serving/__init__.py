"""Serving a trained run outside training: top-k predictions for image files (``predict.py``) and
the model as ONNX or TorchScript, uint8 images in, logits out (``export.py``)."""
