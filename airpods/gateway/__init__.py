"""The TLS gateway in front of the stack (issue 35): Caddy's config (caddy.py), the stack's
certificate authority and server certificate (tls.py), and what `start` makes for it
(prepare.py)."""
