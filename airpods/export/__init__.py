"""The stack for other engines: Kubernetes YAML and Quadlet units."""
