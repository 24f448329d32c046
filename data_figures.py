"""Draw the data figures: ``python data_figures.py [data.root=...]`` -> samples.png, augmentations.png.

Installed as ``cifarlab-data-figures`` (:mod:`cifarlab.cli.data_figures`)."""
from cifarlab.cli.data_figures import main

if __name__ == "__main__":
    main()
