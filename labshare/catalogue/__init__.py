"""The catalogue: institutes, labs and instruments; their administration, import and
sync; text and capability search."""
