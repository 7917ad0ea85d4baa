"""Input statistics that image networks are trained with (shared by extraction and image classifiers)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Channel means (R, G, B) of ImageNet images in [0, 1]: what timm's ImageNet models expect to subtract."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Channel standard deviations (R, G, B) of ImageNet images in [0, 1]."""
