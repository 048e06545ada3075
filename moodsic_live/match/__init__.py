"""Match: which music segment should play now (index, alignment, moods, matcher)."""
