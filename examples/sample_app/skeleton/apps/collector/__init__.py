"""Reddit Sentiment Analysis Pipeline -- collector package (sample stand-in)."""
