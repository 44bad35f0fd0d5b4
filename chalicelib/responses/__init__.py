"""OpenAI's Responses API state: stored responses per tenant, and the
orchestration that joins a conversation's history into the one path."""
