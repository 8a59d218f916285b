"""Base models people already have (GGUF, Ollama, SmolLM2, folders), registered by an `import` job."""
