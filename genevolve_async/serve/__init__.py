"""Servers we run ourselves: `genevolve_async.serve.qwen`, the Qwen-Image-Edit `/generate` service."""
