"""What the models speak: the registry and catalog of served models, their
prices, the Llama 3.x template and its tool format and parser, JSON-schema
checks, the Converse and embeddings adapters, and ``bedrock.py``, the only
bedrock-runtime I/O. Deliberately imports nothing, so no import cycles and no
cold-start cost for modules that are not used."""
