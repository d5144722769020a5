"""Data: readers (files -> rows), formats (rows -> chat messages), templates (messages -> labelled tokens)."""
