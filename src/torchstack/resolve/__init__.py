"""Planned images -> one frozen ImageState each: hashes, staging, tags, records."""
