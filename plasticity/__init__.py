"""plasticity: how convolutional networks recover after their filters are pruned away.

The library is in subpackages and modules named for what they hold: `runs` (one run's config,
lifecycle and result), `studies` (sets of runs with a plan and a summary), `pruning` (groups,
criteria, masks, cost), `train`, `data`, `models`, `store`, `jobs` (background work for the
dashboard) and `cli`. Nothing here imports Streamlit.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plasticity")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0"
