"""STAND-IN for the llm-d inference simulator, which cannot be built here (see `server`)."""
