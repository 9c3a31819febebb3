"""The answer step (``result.py``): answerability, the extractive and generative answerers, marker checks, citations."""
