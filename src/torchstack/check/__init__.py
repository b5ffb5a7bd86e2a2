"""Run the in-container suite in each image and report it."""
