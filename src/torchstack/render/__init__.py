"""ImageSpec + lock -> images/<id>/ build context. Pure and deterministic."""
