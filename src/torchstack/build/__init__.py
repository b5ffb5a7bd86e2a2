"""Build resolved images with BuildKit; build inputs, provenance, bootstrap, bake."""
