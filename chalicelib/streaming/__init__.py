"""Real streaming of answers: the event renderers (native and OpenAI server-
sent events), the live stream that holds a key's reservation until the last
chunk, the streamed response value, and the Lambda Runtime API loop that
sends it through API Gateway's response streaming once deployed."""
