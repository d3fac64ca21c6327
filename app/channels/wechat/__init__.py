"""WeChat Official Account channel."""
