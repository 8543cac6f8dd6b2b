"""requests-compatibility runner (run.py) and its pytest plugin."""
