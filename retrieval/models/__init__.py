"""The trained models: encoders (texts -> unit vectors) and the reader protocol."""
