"""pathattn: attention-based, weakly supervised medical imaging pipelines.

Stages (each a subpackage, a ``pathattn <stage>`` command and a Snakemake rule):
``tile`` whole-slide images into patch grids. Later stages land as they are built.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pathattn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
