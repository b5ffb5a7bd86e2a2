"""The only code that talks to Docker, BuildKit and registries."""
