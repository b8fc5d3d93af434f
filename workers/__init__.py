"""The image worker: turns image jobs into PNGs in the image store."""
