"""Stage ``extract``: patch features from timm encoders, read straight from the slides."""
