"""Export a trained model, uint8 images in, logits out: ``python export.py ckpt_path=<run dir or .ckpt> format=onnx|torchscript``.

Installed as ``cifarlab-export`` (:mod:`cifarlab.cli.export`)."""
from cifarlab.cli.export import main

if __name__ == "__main__":
    main()
