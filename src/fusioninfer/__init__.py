"""FusionInfer: one InferenceService in, a complete LLM serving stack out."""

__version__ = "0.1.0"
