"""What is loaded in this worker, and how it follows the registry on disk."""
