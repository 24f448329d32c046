"""Is B better than A on the test set? ``python compare.py a=<run or sweep dir> b=<run or sweep dir>``.

Installed as ``cifarlab-compare`` (:mod:`cifarlab.cli.compare`)."""
from cifarlab.cli.compare import main

if __name__ == "__main__":
    main()
