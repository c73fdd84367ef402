"""Configuration: embedded defaults, the user file, templates and validation (pure)."""
