"""The Gradio app (``app.py``): :mod:`~cifarlab.app.explorer` holds its logic on a
:class:`~cifarlab.runs.run.TrainedRun`, :mod:`~cifarlab.data.decode` turns uploads into 32 x 32 pixels,
:mod:`~cifarlab.app.ui` builds and serves the UI."""
