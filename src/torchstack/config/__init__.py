"""matrix.yaml and layers/ -> a validated, frozen Matrix of ImageSpecs."""
