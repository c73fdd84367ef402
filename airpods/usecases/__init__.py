"""One module per command's use case (start, stop, restart, status, pull, clean); what they
share is in common.py. The CLI parses, calls one use case and renders its result."""
