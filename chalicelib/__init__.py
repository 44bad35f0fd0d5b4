"""Everything the Lambda needs besides app.py: one concern per module."""
