"""The self-contained HTML report of a results folder (``pathattn report``)."""
