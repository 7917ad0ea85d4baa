"""pathattn's networks, one subpackage per family; importing this package registers every model.

Build a model by name with :func:`pathattn.registry.create_model` and list them with
:func:`pathattn.registry.list_models` (``list_models(family="mil")``).
"""

from pathattn.models import image, mil, seg

__all__ = ["image", "mil", "seg"]
