"""Capture: images, videos and (later) cameras, as timestamped frames."""
