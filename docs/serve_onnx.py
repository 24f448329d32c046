"""Serve export.py's model.onnx with onnxruntime, numpy and Pillow alone: python serve_onnx.py <export dir> <image>."""
import json
import sys
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

folder, image = sys.argv[1], Image.open(sys.argv[2])
classes = json.load(open(f"{folder}/export.json"))["class_names"]
session = ort.InferenceSession(f"{folder}/model.onnx")
image.draft(None, (64, 64))  # JPEG: decode at a reduced scale, as cifarlab does
image = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), (32, 32), Image.Resampling.BOX)  # centre square
logits = session.run(["logits"], {"images": np.asarray(image).transpose(2, 0, 1)[None]})[0][0]  # uint8 (1, 3, 32, 32)
probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
for i in np.argsort(-probs)[:3]:
    print(f"{classes[i]} {probs[i]:.4f}")
