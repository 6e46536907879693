"""The local stack: never deployed. Emulates API Gateway (HTTP API, payload v2) from template.yaml."""
