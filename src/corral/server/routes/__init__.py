"""corral.server.routes."""
