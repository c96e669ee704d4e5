"""corral.openai."""
