"""emcl-bench: a benchmark harness for video-language models."""
