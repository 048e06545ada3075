"""The music library: tracks, their 2 Hz valence/arousal series, segments, and the importers
(DEAM, a folder of the user's music, the generated demo library) that fill it."""
