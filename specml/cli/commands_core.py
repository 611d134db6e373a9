"""Core commands: placeholder module filled in below by the physics core."""
