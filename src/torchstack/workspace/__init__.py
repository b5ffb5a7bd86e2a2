"""Paths inside the project, the one safe writer, run folders."""
