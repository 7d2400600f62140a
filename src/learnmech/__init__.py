"""learnmech: predict, measure and judge the mechanics of neural-network learning.

Layers (imports only go down): cli -> atlas -> report -> sweep -> store -> fit -> observe
-> train -> nets -> data -> theory. See the README for a tour.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("learnmech")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.2.0"

__all__ = ["__version__"]
