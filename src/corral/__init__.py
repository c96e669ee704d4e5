"""corral: a local LLM server that speaks the Ollama protocol."""

__version__ = "0.1.0"
