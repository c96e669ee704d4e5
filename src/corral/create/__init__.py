"""corral.create."""
