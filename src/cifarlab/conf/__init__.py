"""The Hydra configs of :mod:`cifarlab.cli`, shipped inside the package (read through ``pkg://cifarlab.conf``)."""
