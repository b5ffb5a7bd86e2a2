"""Promote what passed: tags, pushes, the journal, SBOMs."""
