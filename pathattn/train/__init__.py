"""Stage ``train``: attention-MIL on slide-level labels (and survival), with Lightning."""
