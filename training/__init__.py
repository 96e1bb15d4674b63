"""Training: turn a folder of photos per person into a versioned model artifact."""
