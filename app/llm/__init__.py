"""Local chat model through llama.cpp."""
