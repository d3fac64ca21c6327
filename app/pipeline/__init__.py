"""The answer flow shared by every entry point: retrieve, ground, generate, clean up.

answer.py in the workers; instant.py, FAQ answers in the web process; generation.py, what
the model does for /v1 and the answer tool, and jobs.py, running that where the model
lives (the llm worker, or the web process) and streaming its events back.
"""
