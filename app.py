"""Serve a trained classifier in a Gradio app: ``python app.py ckpt_path=<run dir or .ckpt> [key=value ...]``.

Installed as ``cifarlab-app`` (:mod:`cifarlab.cli.app`)."""
from cifarlab.cli.app import main

if __name__ == "__main__":
    main()
