"""What a trained run does on the test set: metrics, figures, GradCAM and feature maps, all on
:class:`cifarlab.runs.run.TrainedRun`; :mod:`cifarlab.reports.evaluate` writes ``evaluate.py``'s report."""
