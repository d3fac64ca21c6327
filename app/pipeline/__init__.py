"""The answer flow shared by every entry point: retrieve, ground, generate, clean up."""
