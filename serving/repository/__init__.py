"""What is on disk: versions, aliases, manifests, signatures, verified loading."""
