"""The commands: ``cifarlab-train``, ``cifarlab-evaluate``, ``cifarlab-predict``, ``cifarlab-export``,
``cifarlab-compare``, ``cifarlab-app`` and ``cifarlab-data-figures`` once installed (``pyproject.toml``'s
``[project.scripts]``), and ``python train.py`` and so on in a checkout. Each module composes its config from
the package's own ``cifarlab/conf`` (Hydra's ``pkg://`` search path, so they run from any folder, with their
outputs under the current one) and calls one function of the package.

A folder ``conf/`` in the current directory is searched after the package's configs (``hydra.searchpath`` in
each primary config): ``conf/local/default.yaml`` holds a machine's paths, and ``conf/experiment/<name>.yaml``
adds a preset of one's own.
"""
import warnings

CONFIG_PATH = "pkg://cifarlab.conf"

# ./conf is optional: most folders a command runs from have none, and Hydra warns of every missing search path.
warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=conf is not available")
