"""Stage ``evaluate``: where weakly supervised models look, measured by the WSOL protocol of Choe et al."""
