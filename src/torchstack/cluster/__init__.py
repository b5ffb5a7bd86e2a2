"""Kubernetes: manifests, the API client, candidates, report import."""
