"""Dataset loaders: annotation files in, VideoTextPairs (or QA items) out."""
