"""Top-k classes of image files: ``python predict.py ckpt_path=<run dir or .ckpt> inputs=<folder, glob or file> [key=value ...]``.

Installed as ``cifarlab-predict`` (:mod:`cifarlab.cli.predict`)."""
from cifarlab.cli.predict import main

if __name__ == "__main__":
    main()
