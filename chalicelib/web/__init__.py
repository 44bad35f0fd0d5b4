"""The browser playground: ``GET /`` and its static assets, which live in
``static/`` beside the module and ship inside the Lambda zip. Deliberately
imports nothing."""
