"""Local development stack; never packaged into the Lambda."""
