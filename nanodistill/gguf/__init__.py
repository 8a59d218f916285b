"""GGUF files: reading headers and tensors, converting to MLX, verifying, exporting, Ollama blobs."""
